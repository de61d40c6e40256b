"""At-least-once without loss: retries, dead letters, idempotency, ownership of in-flight work."""
