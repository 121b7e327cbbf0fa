"""Locust users and the measurement code they run."""
