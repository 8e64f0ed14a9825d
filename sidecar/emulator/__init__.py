"""A stateful emulator of the Cloudflare v4 API subset dns-sidecar uses (development, tests)."""

from sidecar.emulator.app import Emulator

__all__ = ["Emulator"]
