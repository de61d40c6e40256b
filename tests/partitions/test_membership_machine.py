"""A Hypothesis state machine over real member processes: members join, leave (SIGTERM),
are killed (-9) and frozen (SIGSTOP, shorter or longer than the lease) in any order while
a producer runs, and after every step the records of TimelineHandler say that each
partition had one member handling it at a time:

- **one epoch at a time**: the calls of a partition, in the order they started, carry
  epochs that never go down. A member starts nothing under a lease once a newer lease of
  that partition has started something (the fence, listener/tenure.py), and a hand-over
  lets the giver's calls finish before the taker starts.
- **one call of a key at a time, in order**: across every member, no key's calls overlap
  and no entry of a key starts before an earlier one did (``verdict``). A call that was
  running when its member froze may end after the new owner began: its write carries the
  old epoch and the fenced store refuses it (counted, not accepted).

At the end every entry was handled and nothing is pending. Real processes: marked fault.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.partitions.test_many_hosts import (
    CUSTOMERS,
    Producer,
    Supervisor,
    pending,
    start,
    timeline_key,
    verdict,
    write_config,
)
from tests.process.test_supervisor import until

pytestmark = pytest.mark.fault
MOST_MEMBERS = 3
LEASE_TTL = 2.0
"""write_config's ``membership.lease_ttl``."""


def epochs_going_down(r: redis.Redis) -> list[str]:
    """Each place where a partition's calls, in start order, go to an older epoch."""
    calls: dict[str, list[tuple[float, int, str]]] = {}
    for c in range(CUSTOMERS):
        for kind in ("timeline", "refused"):
            for item in r.lrange(timeline_key(c, kind), 0, -1):
                seq, begun, _ended, epoch, consumer, stream = str(item).split()
                calls.setdefault(stream, []).append(
                    (float(begun), int(epoch), f"#{seq} by {consumer} ({kind})"))
    found = []
    for stream, started in calls.items():
        started.sort()
        for (_, e0, who0), (_, e1, who1) in itertools.pairwise(started):
            if e1 < e0:
                found.append(f"{stream}: {who1} epoch {e1} after {who0} epoch {e0}")
    return found


def test_members_joining_leaving_killed_and_frozen_never_share_a_partition(
        tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()

    class Members(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.r = redis.Redis.from_url(redis_url, decode_responses=True)
            self.r.flushdb()
            self.live: list[Supervisor] = []
            self.gone: list[Supervisor] = []
            self.started = 0
            self._join()
            self.producer = Producer(self.r, rate=150.0)
            self._join()  # two members to begin with: every rule may run at once

        def _join(self) -> Supervisor:
            self.started += 1
            member = start(config, redis_url, logs / f"m{self.started}.log", workers=1)
            self.live.append(member)
            until(lambda: member.owned() != {}, "the new member serving its metrics", 20)
            return member

        def _logs(self) -> str:
            return "".join(m.log.read_text()[-1500:] for m in self.live + self.gone)

        @precondition(lambda self: len(self.live) < MOST_MEMBERS)
        @rule()
        def join(self) -> None:
            self._join()

        @precondition(lambda self: len(self.live) > 1)
        @rule(data=st.data())
        def leave(self, data: st.DataObject) -> None:
            member = data.draw(st.sampled_from(self.live), label="leaving")
            self.live.remove(member)
            self.gone.append(member)
            assert member.stop() == 0, member.log.read_text()[-3000:]

        @precondition(lambda self: len(self.live) > 1)
        @rule(data=st.data())
        def kill(self, data: st.DataObject) -> None:
            member = data.draw(st.sampled_from(self.live), label="killed")
            self.live.remove(member)
            self.gone.append(member)
            member.proc.kill()
            member.proc.wait(5)
            member.sink.close()

        @rule(data=st.data(), seconds=st.sampled_from([0.5, 1.8, LEASE_TTL + 0.8]))
        def freeze(self, data: st.DataObject, seconds: float) -> None:
            """Shorter than the lease's trust, past the trust but not the lease, past
            the lease (its partitions are taken while it sleeps)."""
            member = data.draw(st.sampled_from(self.live), label="frozen")
            member.proc.send_signal(signal.SIGSTOP)
            time.sleep(seconds)
            member.proc.send_signal(signal.SIGCONT)

        @rule()
        def wait(self) -> None:
            time.sleep(1.0)

        @invariant()
        def one_member_per_partition(self) -> None:
            assert epochs_going_down(self.r) == [], self._logs()
            result = verdict(self.r, self.producer.sent)
            assert (result.violations, result.overlaps) == (0, 0), \
                (result.details, self._logs())

        def teardown(self) -> None:
            try:
                total = self.producer.stop()
                until(lambda: verdict(self.r, total).handled == total,
                      f"all {total} handled", 60)
                until(lambda: pending(self.r) == 0, "nothing pending", 20)
                result = verdict(self.r, total)
                assert result.lost == [], self._logs()
                assert (result.violations, result.overlaps) == (0, 0), \
                    (result.details, self._logs())
                assert epochs_going_down(self.r) == [], self._logs()
            finally:
                codes = [m.stop() for m in self.live]
                self.r.close()
            assert codes == [0] * len(codes), self._logs()

    run_state_machine_as_test(Members, settings=settings(
        max_examples=4, stateful_step_count=6, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
