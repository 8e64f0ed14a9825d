"""State that several replicas must share: replay nonces, write locks, request budgets and
read-cache versions.

``base`` holds the small protocols the rest of the sidecar talks to; ``local`` implements them
in-process (one replica, no Redis); ``redis`` and its neighbours implement them on Redis or
Valkey, imported only when ``DNS_SIDECAR_REDIS_URL`` is set.
"""
