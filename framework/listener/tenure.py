"""A partition's lease, as the subscriptions of that partition see it (the fence).

The membership loop (partitions/membership.py) holds the lease and renews it; the loop of
each of the partition's subscriptions only asks whether it may act now. The rule: a
member reads, starts a handler or acks only while its last successful renewal was *sent*
less than ``TRUST`` × ``lease_ttl`` ago (the lease was then granted for ``lease_ttl`` by
the server's clock, from a moment after the send), and a read is sent only if its whole
BLOCK ends inside that window — so nothing this member does can reach Redis after the
lease may have expired and another member taken the partition over. Once the lease is
lost (another member holds it, or it expired by this member's own reckoning) nothing more
of the partition is started or acked here: its pending entries are the new owner's.
"""

from __future__ import annotations

from typing import Protocol


class Tenure(Protocol):
    """What a subscription of a leased partition may ask (see the module's rule)."""

    @property
    def epoch(self) -> int:
        """The lease's epoch: it only grows, so a store can refuse an older one."""
        ...

    @property
    def lost(self) -> bool:
        """Lost for good: another member owns it, or it expired by our reckoning."""
        ...

    def trusted(self, until: float = 0.0) -> bool:
        """May act now and for ``until`` seconds more (a read's BLOCK)."""
        ...

    async def renewed(self, timeout: float) -> None:
        """Until the next renewal (or loss), at most ``timeout`` seconds."""
        ...


async def held(tenure: Tenure) -> bool:
    """Wait while the lease is not trusted (a renewal is late), never longer than it can
    last (``lost`` turns true by then): True once trusted again, False once lost."""
    while not tenure.trusted():
        if tenure.lost:
            return False
        await tenure.renewed(0.25)
    return True
