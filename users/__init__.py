"""The Locust layer: users, the run split by role, options, recording, the web UI (the client is llmclient/)."""
