"""Logs, metrics and per-request context."""
