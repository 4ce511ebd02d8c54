"""Booted Debian test hosts (bootedhost.py)."""
