"""Execution: the symbol workers that match, commit and publish, with expiry and recovery."""
