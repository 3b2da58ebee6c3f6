"""The JSON admin API under /admin (see api.py)."""
