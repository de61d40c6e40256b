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
