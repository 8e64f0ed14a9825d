"""The routing table file: schema, loading, and the runtime objects built from it."""
