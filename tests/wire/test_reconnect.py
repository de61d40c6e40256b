import asyncio

from streamboot.wire.reconnect import ReconnectBackoff


def test_delays_grow_are_capped_and_reset() -> None:
    backoff = ReconnectBackoff(initial=0.1, cap=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.1 <= delays[0] <= 0.2
    assert delays[3] >= 0.8
    assert max(delays) <= 1.1  # cap plus at most one jitter step
    backoff.reset()
    assert backoff.next_delay() <= 0.2


async def test_sleep_ends_early_when_stopping() -> None:
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(ReconnectBackoff.wait(30, stop), timeout=1)
