"""One process's life: reaching Redis before anything starts, the bounded stop, and the
supervisor of ``streamboot run --workers N`` with its worker processes.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
