"""``python -m sidecar`` is the ``dns-sidecar`` command."""

from sidecar.cli import main

raise SystemExit(main())
