"""The webhook protocol on port 7100: wire models, handlers, and the error table."""
