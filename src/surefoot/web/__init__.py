"""The REST API and the operator console: an adapter over ops and engine, no rules inside."""
