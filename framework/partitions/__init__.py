"""Partitioned listeners: the partitions' keys, which process reads which, and the guard
against changing their number.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
