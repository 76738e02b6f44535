"""Helpers for the integration tests: a real HTTP fault server and store probes."""
