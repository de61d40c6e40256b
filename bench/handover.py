"""Hand-over time: how long a partition goes unhandled when it changes hands.

    python bench/handover.py [--repeats 10] [--events join,leave,kill]
                             [--lease-ttl 10s] [--heartbeat 1s] [--rate 400]

Members are ``streamboot run FILE`` processes of one listener with 4 partitions, its
handler recording the start of every call (bench.handlers:StartsHandler), a producer
writing ``--rate`` entries a second spread over the partitions. Each repeat, on a flushed
server:

- ``join``: member A owns all 4; B starts. A partition's gap is from A's last start on it
  to B's first (the two that move).
- ``leave``: A and B own 2 each; A gets SIGTERM (settles, releases, leaves). Gap: A's
  last start to B's first, on A's partitions.
- ``kill``: A and B own 2 each; A is killed with -9. Gap: the kill to B's first start
  on A's partitions (A's lease expires ``lease_ttl`` after its last renewal).

A repeat's figure is its longest gap (the partition that waited most); each event prints
one JSON line with the median and max of the repeats, and each repeat. The membership
settings are the documented defaults unless given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamboot.devserver import RedisServer  # noqa: E402
from streamboot.partitions.keys import lease_key, partition_key  # noqa: E402

PARTITIONS = 4
STREAMS = [partition_key("bench", i) for i in range(PARTITIONS)]


def app_file(where: Path, lease_ttl: str, heartbeat: str) -> Path:
    path = where / "handover.yaml"
    path.write_text(f"""\
container: {{poll_timeout: 200ms, batch_size: 20, concurrency: 8}}
logging: {{level: WARNING}}
membership: {{lease_ttl: {lease_ttl}, heartbeat: {heartbeat}}}
listeners:
  bench:
    stream: bench
    group: g
    handler: bench.handlers:StartsHandler
    partitions: {PARTITIONS}
    cleanup: {{enabled: false}}
""")
    return path


class Producer:
    """``rate`` entries a second, round-robin over the partitions, in a thread."""

    def __init__(self, client: redis.Redis, rate: float) -> None:
        self._client, self._pause = client, PARTITIONS / rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            pipe = self._client.pipeline(transaction=False)
            for stream in STREAMS:
                pipe.xadd(stream, {"n": "1"})
            pipe.execute()
            time.sleep(self._pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def owners(client: redis.Redis) -> list[str | None]:
    """Each partition's live lease owner (by the server's clock), None when free."""
    seconds, micros = client.time()
    now = seconds * 1000 + micros // 1000
    found: list[str | None] = []
    for stream in STREAMS:
        owner, until = client.hmget(lease_key(stream), "owner", "until")
        found.append(owner if owner and int(until or 0) > now else None)
    return found


def wait(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def starts(client: redis.Redis, stream: str) -> list[tuple[float, str]]:
    found = []
    for item in client.lrange(f"starts:{stream}", 0, -1):
        at, who = item.split()
        found.append((float(at), who))
    return found


def gap(client: redis.Redis, stream: str, giver: str, taker: str,
        event: float | None = None) -> float:
    """From the giver's last start (or ``event``) to the taker's first start after it."""
    calls = starts(client, stream)
    given = event if event is not None else max(t for t, who in calls if who == giver)
    return min(t for t, who in calls if who == taker and t >= given) - given


class Members:
    def __init__(self, config: Path, url: str) -> None:
        self._config, self._url = config, url
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self) -> subprocess.Popen[Any]:
        env = {**os.environ, "STREAMBOOT_REDIS__URL": self._url, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "streamboot", "run", str(self._config)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                stop(proc)


def one_repeat(event: str, config: Path, url: str, rate: float) -> float:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushall()
    members = Members(config, url)
    producer = Producer(client, rate)
    try:
        a = members.start()
        wait(lambda: None not in owners(client) and len(set(owners(client))) == 1,
             "the first member owning every partition")
        first = owners(client)[0]
        assert first is not None
        members.start()
        if event == "join":
            wait(lambda: len(set(owners(client)) - {None}) == 2, "the joiner's share")
            time.sleep(0.5)  # a few starts by the taker
            now = owners(client)
            moved = [s for s, o in zip(STREAMS, now, strict=True) if o != first]
            second = next(o for o in now if o != first)
            assert second is not None
            return max(gap(client, s, first, second) for s in moved)
        wait(lambda: sorted(map(str, owners(client))).count(first) == 2, "two each")
        time.sleep(1.0)
        mine = [s for s, o in zip(STREAMS, owners(client), strict=True) if o == first]
        second = next(o for o in owners(client) if o != first)
        assert second is not None
        happened = time.time()
        if event == "leave":
            a.send_signal(signal.SIGTERM)
            a.wait(60)
        else:
            a.send_signal(signal.SIGKILL)
            a.wait(10)
        wait(lambda: set(owners(client)) == {second}, "the survivor owning every partition")
        time.sleep(0.5)
        if event == "leave":
            return max(gap(client, s, first, second) for s in mine)
        return max(gap(client, s, first, second, event=happened) for s in mine)
    finally:
        producer.stop()
        members.close()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--events", default="join,leave,kill")
    parser.add_argument("--lease-ttl", default="10s")
    parser.add_argument("--heartbeat", default="1s")
    parser.add_argument("--rate", type=float, default=400.0)
    args = parser.parse_args()
    with RedisServer() as server, tempfile.TemporaryDirectory() as where:
        config = app_file(Path(where), args.lease_ttl, args.heartbeat)
        for event in args.events.split(","):
            gaps = [one_repeat(event, config, server.url, args.rate)
                    for _ in range(args.repeats)]
            print(json.dumps({
                "event": event, "lease_ttl": args.lease_ttl, "heartbeat": args.heartbeat,
                "partitions": PARTITIONS, "rate": args.rate, "repeats": args.repeats,
                "median_s": round(statistics.median(gaps), 3),
                "max_s": round(max(gaps), 3), "gaps_s": [round(g, 3) for g in gaps]}),
                flush=True)


if __name__ == "__main__":
    main()
