"""Talking to other systems: the outbound HTTP client (more connectors come here)."""
