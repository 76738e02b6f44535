"""The sample accounts-payable automation behind ``surefoot demo``."""
