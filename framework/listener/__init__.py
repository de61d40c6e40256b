"""One subscription: read → dispatch → ack → retry or dead-letter, its ownership of what
it holds, idempotency, and the shared read of idle listeners; and the container of them.

Not API: import what users write from ``streamboot``; these modules may change between
minor versions.
"""
