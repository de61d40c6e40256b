"""The scheduled jobs: the contract a feature declares, the registry of features, the
schedule they run on, and the jobs themselves — rotation, retention, cleanup, recovery."""
