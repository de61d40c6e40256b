"""Scheduled jobs: each a thin async executor around pure decisions, run by APScheduler."""
