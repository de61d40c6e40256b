"""The listener container and the per-subscription poll loop it owns."""
