"""State that several replicas must share: replay nonces, write locks, request budgets and
read-cache versions.

- ``base``: the small protocols the rest of the sidecar talks to.
- ``local``, ``budget``, ``locks``: in-process implementations (one replica, no Redis; the
  replay cache itself is ``sidecar.auth.replay``).
- ``shared``: the same on Redis or Valkey, built only when ``DNS_SIDECAR_REDIS_URL`` is set;
  ``connection`` (bounded calls, health, data-loss sentinel, disruptions), ``replay``,
  ``redis_locks``, ``redis_budget``, ``redis_versions``, ``retries`` (the Redis writes owed
  after a provider call, retried in the background) and ``metrics``. redis-py is imported only
  then.
"""
