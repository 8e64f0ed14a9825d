"""The benchmark suite: ``python -m bench`` (``make bench``); ``--quick`` for CI."""
