"""Apps, an external effect ledger, process control and checkers for durability tests."""
