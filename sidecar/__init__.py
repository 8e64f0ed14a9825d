"""dns-sidecar: a DNS provider backend for the Kubernetes DNS operator's webhook protocol."""

__version__ = "0.1.0"
