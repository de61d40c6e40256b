"""Partitioned listeners: the partitions' keys, which process reads which, and the guard
against changing their number."""
