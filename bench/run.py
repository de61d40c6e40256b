"""Streamboot's benchmark: throughput, latency and scaling against a hand-written loop.

    python bench/run.py                 # the full run (about 10 minutes on 2 vCPUs)
    python bench/run.py --quick         # fewer entries and repeats, for a smoke test

Starts its own redis-server on a free loopback port. Every configuration is repeated,
interleaved (A B C A B C …, so drift in the machine's speed hits all alike), and the
median is reported with each consumer's ratio to the hand-written redis.asyncio loop.
A run is checked before it counts: every entry handled, group lag 0, PEL empty; a run
that fails the check is reported as a failure, not a number.

Writes bench/results/latest.md, latest.json and latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamboot.devserver import RedisServer  # noqa: E402

CONSUMERS = ["handwritten", "streamboot", "streamboot-model", "faststream", "faststream-batch"]
LABELS = {
    "handwritten": "(a) hand-written redis.asyncio loop",
    "streamboot": "(b) Streamboot, no validation",
    "streamboot-model": "(c) Streamboot, pydantic model",
    "faststream": "(d) FastStream StreamSub, per message",
    "faststream-batch": "(d) FastStream StreamSub, batch",
}
FIELDS = {"order_id": "", "user_id": "user-42", "product_id": "tv-55", "qty": "1", "ts": ""}


@dataclass
class Outcome:
    rate: float | None = None
    error: str | None = None
    samples: list[int] = field(default_factory=list)
    cpu: float | None = None


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    import hiredis  # noqa: F401

    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{mem:.0f} GiB",
        "python": platform.python_version(), "redis-server": server.stdout.split()[2],
        "redis-py": redis.__version__, "hiredis": "yes",
    }


def prefill(client: redis.Redis, stream: str, n: int, group: str = "g") -> None:
    client.delete(stream)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {**FIELDS, "order_id": f"o{i}", "ts": str(time.time_ns())})
        if i % 2000 == 1999:
            pipe.execute()
            pipe = client.pipeline(transaction=False)
    pipe.execute()
    client.xgroup_create(stream, group, "0")


def check(client: redis.Redis, stream: str, expected: int, handled: int) -> str | None:
    """None when the run is correct: everything handled, lag 0, nothing pending."""
    (info,) = client.xinfo_groups(stream)
    problems = []
    if handled != expected:
        problems.append(f"handled {handled} of {expected}")
    if info["lag"] not in (0, None):
        problems.append(f"lag {info['lag']}")
    if info["pending"] != 0:
        problems.append(f"{info['pending']} pending")
    if int(info.get("entries-read") or 0) != expected:
        problems.append(f"entries-read {info.get('entries-read')}")
    return "; ".join(problems) or None


EXTRA_ARGS: list[str] = []


def consumer_cmd(name: str, url: str, stream: str, count: int, total: int,
                 *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "consumers.py"), name, "--url", url,
            "--stream", stream, "--group", "g", "--count", str(count), "--total", str(total),
            *extra, *EXTRA_ARGS]


def run_consumer(cmd: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"exit {out.returncode}: {out.stderr.strip()[-400:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def throughput(client: redis.Redis, url: str, name: str, count: int, n: int) -> Outcome:
    stream = f"bench:tp:{name}:{count}"
    prefill(client, stream, n)
    try:
        result = run_consumer(consumer_cmd(name, url, stream, count, n), timeout=600)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return Outcome(error=str(exc))
    finally:
        pass
    error = check(client, stream, n, result["handled"])
    client.delete(stream)
    if error:
        return Outcome(error=error)
    return Outcome(rate=n / result["seconds"], cpu=result["cpu_seconds"] / result["seconds"])


def latency(client: redis.Redis, url: str, name: str, rate: int, seconds: float) -> Outcome:
    stream = f"bench:lat:{name}:{rate}"
    client.delete(stream)
    client.xgroup_create(stream, "g", "$", mkstream=True)
    total = int(rate * seconds)
    go = f"bench:go:{time.monotonic_ns()}"
    proc, log = _spawn(consumer_cmd(name, url, stream, 100, total, "--latency", "--wait-go", go))
    _wait_ready(client, go, 1)
    client.set(go, 1)
    # Produce only once the consumer reads: a consumer that takes two seconds to start
    # (FastStream's broker.start) would otherwise have those two seconds counted as the
    # first entries' latency — the p50 of 2-4 s this benchmark once published for it.
    _wait_ready(client, go, 1, what="live")
    time.sleep(0.2)  # its first blocking read
    _produce_at(client, stream, rate, total)
    try:
        stdout, _ = proc.communicate(timeout=seconds * 20 + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return Outcome(error="timed out: fell behind the producer")
    stderr = _read(log)
    if proc.returncode != 0:
        return Outcome(error=f"exit {proc.returncode}: {stderr.strip()[-300:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    error = check(client, stream, total, result["handled"])
    client.delete(stream)
    return Outcome(error=error) if error else Outcome(samples=result["samples"])


def _spawn(cmd: list[str]) -> tuple[subprocess.Popen[str], Any]:
    """A consumer whose stderr goes to a file: a pipe nobody reads while the run lasts
    fills up (64 KiB) and then blocks the consumer — a chatty one would measure the pipe."""
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by _read, after the run
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                            cwd=ROOT), log


def _read(log: Any) -> str:
    log.seek(0)
    text = str(log.read())
    log.close()
    return text


def _produce_at(client: redis.Redis, stream: str, rate: int, total: int) -> None:
    """One XADD per entry at a fixed rate, each stamped with its send time."""
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            if due - now > 0.002:
                time.sleep(0.001)
        client.xadd(stream, {**FIELDS, "order_id": f"o{i}", "ts": str(time.time_ns())})


def _wait_ready(client: redis.Redis, go: str, processes: int, what: str = "ready") -> None:
    deadline = time.monotonic() + 60
    while len(client.keys(f"{go}:{what}:*")) < processes:
        if time.monotonic() > deadline:
            raise RuntimeError("consumers did not start")
        time.sleep(0.01)


def scaling(client: redis.Redis, url: str, name: str, processes: int, n: int) -> Outcome:
    """Wall time from 'go' until the group has read and acked everything."""
    stream = f"bench:scale:{name}:{processes}"
    prefill(client, stream, n)
    go = f"bench:go:{time.monotonic_ns()}"
    spawned = [_spawn(consumer_cmd(name, url, stream, 100, n, "--wait-go", go))
               for _ in range(processes)]
    _wait_ready(client, go, processes)
    start = time.perf_counter()
    client.set(go, 1)
    while True:
        (info,) = client.xinfo_groups(stream)
        if info["lag"] == 0 and info["pending"] == 0:
            break
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    client.set(f"{go}:stop", 1)
    handled = 0
    for proc, log in spawned:
        stdout, _ = proc.communicate(timeout=60)
        stderr = _read(log)
        if proc.returncode != 0:
            return Outcome(error=f"exit {proc.returncode}: {stderr.strip()[-300:]}")
        handled += json.loads(stdout.strip().splitlines()[-1])["handled"]
    error = check(client, stream, n, handled)
    client.delete(stream)
    return Outcome(error=error) if error else Outcome(rate=n / elapsed)


def percentile(samples: list[int], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index] / 1000  # µs -> ms


def median_rate(outcomes: list[Outcome]) -> float | None:
    rates = [o.rate for o in outcomes if o.rate is not None]
    return statistics.median(rates) if rates and len(rates) == len(outcomes) else None


def errors(outcomes: list[Outcome]) -> str:
    return "; ".join(sorted({o.error for o in outcomes if o.error}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--counts", default="1,10,100,500")
    parser.add_argument("--consumers", default=",".join(CONSUMERS))
    parser.add_argument("--rates", default="1000,2000")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--skip", default="", help="comma list of: throughput,latency,scaling")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--uvloop", action="store_true", help="run every consumer on uvloop")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if args.quick:
        args.entries, args.repeats, args.latency_seconds = 20_000, 1, 2.0
    if args.uvloop:
        EXTRA_ARGS.append("--uvloop")
    consumers = [c for c in args.consumers.split(",") if c]
    counts = [int(c) for c in args.counts.split(",")]
    skip = set(args.skip.split(","))
    if any(c.startswith("faststream") for c in consumers):
        try:
            import faststream  # noqa: F401
        except ImportError:
            print("FastStream not installed (pip install -e '.[bench]'): skipping it")
            consumers = [c for c in consumers if not c.startswith("faststream")]

    report: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        if "throughput" not in skip:
            report["throughput"] = bench_throughput(client, server.url, consumers, counts, args)
        if "latency" not in skip:
            report["latency"] = bench_latency(client, server.url, consumers, args)
        if "scaling" not in skip:
            report["scaling"] = bench_scaling(client, server.url, args)
        client.close()
    write(report, Path(args.out))


def _entries_for(name: str, count: int, n: int) -> int:
    if name == "faststream":
        return min(n, 10_000)  # about 2,000/s: more would only take longer
    if count == 1:
        return min(n, 20_000)  # one round trip per entry
    return n


def bench_throughput(client: redis.Redis, url: str, consumers: list[str], counts: list[int],
                     args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, dict[str, list[Outcome]]] = {c: {} for c in consumers}
    for repeat in range(args.repeats):
        for count in counts:
            for name in consumers:
                n = _entries_for(name, count, args.entries)
                outcome = throughput(client, url, name, count, n)
                results[name].setdefault(str(count), []).append(outcome)
                shown = f"{outcome.rate:,.0f}/s" if outcome.rate else f"FAILED {outcome.error}"
                print(f"[throughput {repeat + 1}/{args.repeats}] COUNT {count:>3} {name:<17}"
                      f" {shown}", flush=True)
    table: dict[str, Any] = {}
    for name, per_count in results.items():
        table[name] = {
            count: {"median": median_rate(outs), "runs": [o.rate for o in outs],
                    "cpu": [o.cpu for o in outs], "error": errors(outs)}
            for count, outs in per_count.items()
        }
    return table


def bench_latency(client: redis.Redis, url: str, consumers: list[str],
                  args: argparse.Namespace) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for rate in (int(r) for r in args.rates.split(",")):
        for name in consumers:
            outcome = latency(client, url, name, rate, args.latency_seconds)
            if outcome.error:
                table.setdefault(name, {})[str(rate)] = {"error": outcome.error}
                print(f"[latency] {rate}/s {name:<17} FAILED {outcome.error}", flush=True)
                continue
            row = {f"p{p}": percentile(outcome.samples, p) for p in (50, 99, 99.9)}
            table.setdefault(name, {})[str(rate)] = row
            print(f"[latency] {rate}/s {name:<17} p50 {row['p50']:.2f} ms  p99 "
                  f"{row['p99']:.2f} ms  p99.9 {row['p99.9']:.2f} ms", flush=True)
    return table


def bench_scaling(client: redis.Redis, url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, dict[str, list[Outcome]]] = {}
    for repeat in range(args.repeats):
        for processes in (1, 2):
            for name in ("handwritten", "streamboot"):
                outcome = scaling(client, url, name, processes, args.entries)
                results.setdefault(name, {}).setdefault(str(processes), []).append(outcome)
                shown = f"{outcome.rate:,.0f}/s" if outcome.rate else f"FAILED {outcome.error}"
                print(f"[scaling {repeat + 1}/{args.repeats}] {processes} process(es) "
                      f"{name:<12} {shown}", flush=True)
    return {name: {p: {"median": median_rate(outs), "runs": [o.rate for o in outs],
                       "error": errors(outs)} for p, outs in per.items()}
            for name, per in results.items()}


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2))
    text = render(report)
    (out / "latest.md").write_text(text)
    print("\n" + text)
    try:
        chart(report, out / "latest.png")
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no chart")


def _fmt_rate(cell: dict[str, Any], base: float | None) -> str:
    if cell.get("median") is None:
        return f"failed: {cell.get('error') or 'no result'}"
    ratio = f" ({cell['median'] / base:.2f}×)" if base else ""
    return f"{cell['median']:,.0f}/s{ratio}"


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark results", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}; "
        f"redis-server {m['redis-server']} on loopback; redis-py {m['redis-py']} with hiredis.",
        f"Command: `{' '.join(['python bench/run.py', *_argv()])}`", "",
    ]
    tp = report.get("throughput")
    if tp:
        counts = list(next(iter(tp.values())).keys())
        lines += ["## Throughput (entries/s, median; ratio to (a))", "",
                  "| consumer | " + " | ".join(f"COUNT {c}" for c in counts) + " |",
                  "|---|" + "---|" * len(counts)]
        base = tp.get("handwritten", {})
        for name, per in tp.items():
            cells = [_fmt_rate(per[c], base.get(c, {}).get("median")) for c in counts]
            lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
        lines.append("")
    lat = report.get("latency")
    if lat:
        lines += ["## Latency, XADD → handler start (ms)", "",
                  "| consumer | rate | p50 | p99 | p99.9 |", "|---|---|---|---|---|"]
        for name, per in lat.items():
            for rate, row in per.items():
                if "error" in row:
                    lines.append(f"| {LABELS[name]} | {rate}/s | failed: {row['error']} | | |")
                else:
                    lines.append(f"| {LABELS[name]} | {rate}/s | {row['p50']:.2f} | "
                                 f"{row['p99']:.2f} | {row['p99.9']:.2f} |")
        lines.append("")
    sc = report.get("scaling")
    if sc:
        lines += ["## Scaling: worker processes on one group (COUNT 100)", "",
                  "| consumer | 1 process | 2 processes | 2 / 1 |", "|---|---|---|---|"]
        for name, per in sc.items():
            one, two = per["1"].get("median"), per["2"].get("median")
            ratio = f"{two / one:.2f}×" if one and two else "n/a"
            lines.append(f"| {LABELS[name]} | {_fmt_rate(per['1'], None)} | "
                         f"{_fmt_rate(per['2'], None)} | {ratio} |")
        lines.append("")
    return "\n".join(lines)


def _argv() -> list[str]:
    return sys.argv[1:]


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp = report.get("throughput") or {}
    lat = report.get("latency") or {}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    if tp:
        counts = list(next(iter(tp.values())).keys())
        width = 0.8 / max(len(tp), 1)
        for i, (name, per) in enumerate(tp.items()):
            values = [(per[c].get("median") or 0) / 1000 for c in counts]
            axes[0].bar([x + i * width for x in range(len(counts))], values, width,
                        label=LABELS[name])
        axes[0].set_xticks([x + width * (len(tp) - 1) / 2 for x in range(len(counts))],
                           [f"COUNT {c}" for c in counts])
        axes[0].set_ylabel("thousand entries/s (median)")
        axes[0].set_title("Throughput")
        axes[0].legend(fontsize=7)
    if lat:
        names = [n for n in lat if all("p99" in row for row in lat[n].values())]
        rates = list(next(iter(lat.values())).keys())
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            axes[1].bar([x + i * width for x in range(len(rates))],
                        [lat[name][r]["p99"] for r in rates], width, label=LABELS[name])
        axes[1].set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(rates))],
                           [f"{r}/s" for r in rates])
        axes[1].set_ylabel("p99 XADD → handler (ms)")
        axes[1].set_yscale("log")
        axes[1].set_title("Latency p99 (log scale)")
        axes[1].legend(fontsize=7)
    m = report["machine"]
    fig.suptitle(f"Streamboot vs hand-written loop — {m['cpu']}, {m['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
