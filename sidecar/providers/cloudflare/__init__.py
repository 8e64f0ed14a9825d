"""The Cloudflare provider, on the official SDK."""
