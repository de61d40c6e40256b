"""The command layer: every stream command, script and reply parser, in one place.

The ``RedisOperator`` (each command typed), the poll loop's split readers, the wire tuples
they send, the Lua scripts, the reply records, the byte-exact decoding of entries, stream
ids, cluster hash slots, how a Redis error is classified and described, and the backoff a
loop waits out while Redis is down. Nothing outside this folder (and the few places named
in pyproject's banned-api list) imports ``redis``.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
