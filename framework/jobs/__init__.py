"""The scheduled jobs: the contract a feature declares, the registry of features, the
schedule they run on, and the jobs themselves — rotation, retention, cleanup, recovery.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
