"""Credentials from Kubernetes Secrets, environment variables, files or inline values."""
