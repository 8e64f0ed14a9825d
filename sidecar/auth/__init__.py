"""Who may call: HMAC signatures, the replay cache, and the clients they identify."""
