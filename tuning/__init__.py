"""The tuning loop: the server's own settings swept, the server started, checked and stopped for each point."""
