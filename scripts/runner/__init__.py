"""The pieces of `scripts/run_local.py`: configuration, supervised children, checks."""
