"""Prompt sources: what each request asks. Built before the run, never on the hot path."""
