"""bench/ runs what it measures: a quick pass of the benchmark (one COUNT, one repeat, no
timing asserted) must complete every consumer's run and pass its own check — every entry
handled, lag 0, PEL empty. The benchmark imports the package lazily, inside its consumer
processes, so only running it shows that it still works after a change to the surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_quick_benchmark_pass_completes_and_checks_its_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--counts", "100",
         "--consumers", "handwritten,streamboot,streamboot-model",
         "--skip", "latency,scaling", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    runs = report["throughput"]
    assert set(runs) == {"handwritten", "streamboot", "streamboot-model"}
    for consumer, by_count in runs.items():
        outcome = by_count["100"]
        assert not outcome["error"], (consumer, outcome["error"][-1000:])
        assert len(outcome["runs"]) == 1
        assert outcome["median"] > 0, consumer


def test_the_idle_cost_benchmark_measures_a_running_process() -> None:
    """bench/idle.py: 2 listeners, idle 0.5 s: it saw the process's own connections (its
    readers, by client name) and read its CPU and memory."""
    done = subprocess.run([sys.executable, "bench/idle.py", "--listeners", "2", "--seconds",
                           "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["listeners"] == 2
    assert row["connections"] >= 2  # a reader each, at least
    assert row["rss_mib"] > 10
    assert row["cpu_percent"] >= 0


def test_the_scale_benchmark_runs_each_configuration_to_the_end() -> None:
    """bench/scale.py, tiny: 1 and 2 workers on 2 partitions. Each run ends only when every
    entry was read and none is pending (the script checks), so a rate means the work
    happened."""
    done = subprocess.run([sys.executable, "bench/scale.py", "--entries", "3000", "--repeats",
                           "1", "--parts", "workers", "--work-us", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["workers"], r["partitions"]) for r in rows] == [(1, 2), (2, 2)]
    assert all(r["entries_per_s"] > 0 for r in rows)


def test_the_batch_benchmark_applies_every_payment_in_both_shapes() -> None:
    """bench/batches.py, tiny: each round ends only when every payment's effect row is in
    the database (the script asserts the count), so both rates mean the work happened."""
    done = subprocess.run([sys.executable, "bench/batches.py", "--entries", "300",
                           "--rounds", "1", "--synchronous", "NORMAL"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["per_entry_per_s"] > 0
    assert row["batch_per_s"] > 0
