"""Stream lifecycle: rotation periods, retention plans (pure decisions)."""
