"""Logs, traces and metrics: what operators see of a running system.

``logging`` (structlog configuration, context binding), ``redaction`` (secrets never leave
the process), ``tracing`` (a trace per run, persisted with it), ``metrics`` (Prometheus),
and ``instrument``, the calls the engine makes at the start and end of runs and attempts.
Health checks and alert rules act on the store and the App, so they live in ``surefoot.ops``.
"""
