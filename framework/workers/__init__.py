"""``streamboot run --workers N``: worker processes under one supervisor."""
