"""Idle cost of many listeners in one process: connections, CPU and memory.

    python bench/idle.py --listeners 1,20,200,1000 [--seconds 10] [--url URL]

For each N: a fresh redis-server (or URL), one ``streamboot run`` process with N listeners
(N streams, one group each, nothing to read), left idle for ``--seconds`` after it said
it started. Reports, per N: the server's connected clients (CLIENT LIST, the process's
client name), the process's CPU over the idle window (user + system, from /proc), and its
resident memory. Prints one JSON line per N; issue 15's baseline (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamboot.devserver import RedisServer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def app_file(where: Path, url: str, listeners: int) -> Path:
    lines = [f'redis: {{url: "{url}", client_name: idle-bench}}',
             "container: {poll_timeout: 2s}", "listeners:"]
    lines += [f'  l{i}: {{stream: "idle:{i}", group: g, handler: '
              f'"tests.handlers:LoggingHandler"}}' for i in range(listeners)]
    path = where / f"idle-{listeners}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(url: str, listeners: int, seconds: float) -> dict[str, float | int]:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    with tempfile.TemporaryDirectory() as where:
        config = app_file(Path(where), url, listeners)
        proc = subprocess.Popen([str(Path(sys.executable).with_name("streamboot")), "run",
                                 str(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 120
            while True:  # bounded: "started" or the process ends
                line = proc.stderr.readline()
                if not line or " started: " in line or time.monotonic() > deadline:
                    break
            if proc.poll() is not None:
                raise SystemExit(f"run ended at start: {line}")
            time.sleep(1.0)  # let the first job runs pass
            before, began = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu = (cpu_seconds(proc.pid) - before) / (time.monotonic() - began)
            clients = [c for c in client.client_list() if c.get("name") == "idle-bench"]
            return {"listeners": listeners, "connections": len(clients),
                    "cpu_percent": round(100 * cpu, 2), "rss_mib": round(rss_mib(proc.pid), 1)}
        finally:
            stop(proc)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", default="1,20,200,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    for n in (int(x) for x in args.listeners.split(",")):
        if args.url:
            print(json.dumps(measure(args.url, n, args.seconds)), flush=True)
            continue
        with RedisServer() as server:
            print(json.dumps(measure(server.url, n, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
