"""What operators do. The CLI today, the API and console later, call these same functions."""
