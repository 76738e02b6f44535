"""The command line: parse, call ``ops``/``engine``, render. No rules live here."""
