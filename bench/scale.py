"""Scale-out throughput: worker processes, cluster primaries, partitions.

    python bench/scale.py [--entries 100000] [--repeats 3] [--work-us 0,200]
                          [--parts workers,cluster,supervisors]

Each run: a fresh server, ``--entries`` entries written beforehand (pipelined, spread over
the partitions as the Publisher's round-robin would), then one ``streamboot run FILE
[--workers W]`` consumes them. The rate is measured from Redis' own counters (XINFO GROUPS
``entries-read`` summed over the partitions, polled every 20 ms) between 10 % and 90 % of
the entries read, so start-up and the tail do not count; the run must end with every entry
read and none pending (checked). Prints one JSON line per configuration (the median of the
repeats, and each repeat).

- ``workers``: one redis-server, a listener with 2 partitions, 1 vs 2 worker processes;
  handlers doing nothing and burning ``--work-us`` µs of CPU per entry.
- ``cluster``: 2 workers, 1 primary (a standalone redis-server) vs a 3-primary Redis
  Cluster, with 1 vs 6 partitions.
- ``supervisors``: one redis-server, a listener with 6 partitions, 1, 2 and 3
  ``streamboot run FILE`` processes started together (each one member holding partition
  leases, as pods on several hosts would); handlers burning ``--work-us`` µs. The leases'
  first deal and hand-overs fall inside the measured span when they happen there.
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamboot.devserver import RedisClusterServer, RedisServer  # noqa: E402
from streamboot.partitions.keys import lease_key, partition_key  # noqa: E402


@contextmanager
def server(kind: str) -> Iterator[tuple[str, bool]]:
    if kind == "cluster":
        with RedisClusterServer() as cluster:
            yield cluster.url, True
    else:
        with RedisServer() as single:
            yield single.url, False


def connect(url: str, cluster: bool) -> Any:
    if cluster:
        return redis.RedisCluster.from_url(url, decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


def keys(partitions: int) -> list[str]:
    return ["bench"] if partitions == 1 else [partition_key("bench", i)
                                              for i in range(partitions)]


def fill(client: Any, partitions: int, entries: int) -> None:
    streams = keys(partitions)
    for stream in streams:
        try:
            client.xgroup_create(stream, "g", "0", mkstream=True)
        except redis.ResponseError as exc:  # the listeners created it already
            if "BUSYGROUP" not in str(exc):
                raise
    for start in range(0, entries, 5000):
        for stream_index, stream in enumerate(streams):
            pipe = client.pipeline(transaction=False)
            for n in range(start + stream_index, min(start + 5000, entries), len(streams)):
                pipe.xadd(stream, {"n": str(n), "customer": f"c{n % 1000}"})
            pipe.execute()


def read_so_far(client: Any, partitions: int) -> tuple[int, int]:
    read = pending = 0
    for stream in keys(partitions):
        for group in client.xinfo_groups(stream):
            read += int(group.get("entries-read") or 0)
            pending += int(group["pending"])
    return read, pending


def app_file(where: Path, url: str, cluster: bool, partitions: int) -> Path:
    path = where / "scale.yaml"
    path.write_text(f"""\
redis: {{url: "{url}", cluster: {str(cluster).lower()}}}
container: {{poll_timeout: 1s, batch_size: 100, concurrency: 8}}
logging: {{level: WARNING}}
listeners:
  bench:
    stream: bench
    group: g
    handler: bench.handlers:BusyHandler
    partitions: {partitions}
    pending_scan: {{enabled: false}}
    cleanup: {{enabled: false}}
""")
    return path


def owners(client: Any, partitions: int) -> set[str]:
    """The live owners of the partitions' leases; '' for a partition with none."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    found = set()
    for stream in keys(partitions):
        owner, until = client.hmget(lease_key(stream), "owner", "until")
        found.add(owner if owner and int(until or 0) > now_ms else "")
    return found


def dealt(client: Any, partitions: int, supervisors: int, procs: list[Any]) -> None:
    """Until every partition has a live owner and each supervisor holds its share."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = owners(client, partitions)
        if "" not in found and len(found) == min(supervisors, partitions):
            return
        if any(proc.poll() is not None for proc in procs):
            raise SystemExit("streamboot run exited before the partitions were dealt")
        time.sleep(0.05)
    raise SystemExit("the partitions were not dealt within 60 s")


def one_run(kind: str, workers: int, partitions: int, entries: int,
            work_us: float, supervisors: int = 0) -> float:
    """``supervisors`` > 0 (the supervisors part): they start on empty partitions, and
    once the leases are dealt they are stopped (SIGSTOP) while the backlog is written and
    continued (SIGCONT): the deal is not measured (bench/handover.py measures it), and
    every count starts from the same backlog. Else the backlog is written first."""
    with server(kind) as (url, cluster), tempfile.TemporaryDirectory() as where:
        client = connect(url, cluster)
        if not supervisors:
            fill(client, partitions, entries)
        config = app_file(Path(where), url, cluster, partitions)
        env = {**os.environ, "BENCH_WORK_US": str(work_us), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "streamboot", "run", str(config)]
        if workers > 1:
            command += ["--workers", str(workers)]
        procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(supervisors or 1)]
        try:
            if supervisors:  # frozen while the backlog is written (well inside a lease)
                dealt(client, partitions, supervisors, procs)
                for proc in procs:
                    proc.send_signal(signal.SIGSTOP)
                try:
                    fill(client, partitions, entries)
                finally:
                    for proc in procs:
                        proc.send_signal(signal.SIGCONT)
            marks: dict[float, float] = {}
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                read, pending = read_so_far(client, partitions)
                now = time.monotonic()
                for share in (0.1, 0.9):
                    if read >= share * entries and share not in marks:
                        marks[share] = now
                if read >= entries and pending == 0:
                    break
                for proc in procs:
                    if proc.poll() is not None:
                        raise SystemExit(f"streamboot run exited with {proc.returncode}")
                time.sleep(0.02)
            else:
                raise SystemExit("the run did not finish within 600 s")
            return 0.8 * entries / max(marks[0.9] - marks[0.1], 1e-6)
        finally:
            for proc in procs:
                stop(proc)
            client.close()


def measure(kind: str, workers: int, partitions: int, entries: int, work_us: float,
            repeats: int, supervisors: int = 0) -> dict[str, Any]:
    rates = [one_run(kind, workers, partitions, entries, work_us, supervisors)
             for _ in range(repeats)]
    return {"server": kind, "primaries": 3 if kind == "cluster" else 1,
            "supervisors": supervisors or 1, "workers": workers,
            "partitions": partitions, "work_us": work_us, "entries": entries,
            "entries_per_s": round(statistics.median(rates)),
            "runs": [round(r) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-us", default="0,200")
    parser.add_argument("--parts", default="workers,cluster,supervisors")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if "workers" in parts:
        for work in (float(w) for w in args.work_us.split(",")):
            entries = args.entries if work == 0 else max(args.entries // 10, 1000)
            for workers in (1, 2):
                print(json.dumps(measure("single", workers, 2, entries, work, args.repeats)),
                      flush=True)
    if "cluster" in parts:
        for kind in ("single", "cluster"):
            for partitions in (1, 6):
                print(json.dumps(measure(kind, 2, partitions, args.entries, 0,
                                         args.repeats)), flush=True)
    if "supervisors" in parts:
        for work in (float(w) for w in args.work_us.split(",")):
            entries = args.entries if work == 0 else max(args.entries // 4, 1000)
            for supervisors in (1, 2, 3):
                print(json.dumps(measure("single", 1, 6, entries, work, args.repeats,
                                         supervisors)), flush=True)


if __name__ == "__main__":
    main()
