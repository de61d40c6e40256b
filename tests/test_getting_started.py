"""docs/getting-started.md's own project, as a newcomer follows it: the files exactly as the
page shows them, in an empty directory outside the repository, run with the venv's
``streamboot`` command (the repository's venv stands in for the reader's)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from redis import Redis

from streamboot.devserver import RedisServer
from tests.conftest import wait_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
BIN = Path(sys.executable).parent


def documented_files() -> dict[str, str]:
    """Every fenced block of the page whose first line names a file (``# path``)."""
    section = DOC.read_text().split("## Your own project", 1)[1].split("\n## ", 1)[0]
    files = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# "):
            files[first[2:].strip()] = rest
    return files


def test_the_getting_started_project_runs_as_written(tmp_path: Path,
                                                     redis_server: RedisServer) -> None:
    files = documented_files()
    assert set(files) == {"orders/handlers.py", "app.yaml", "publish.py"}
    project = tmp_path / "orders-app"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "orders" / "__init__.py").touch()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMBOOT_") and k != "PYTHONPATH"}
    env |= {"REDIS_URL": redis_server.url, "PATH": f"{BIN}:{env['PATH']}"}
    Redis.from_url(redis_server.url).delete("orders")

    def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                              timeout=60)

    checked = sh("streamboot", "check", "app.yaml")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK app.yaml: 1 listener, redis redis://127.0.0.1:")
    published = sh("python", "publish.py")
    assert published.returncode == 0, published.stderr
    assert published.stdout.count("published ") == 3
    worker = subprocess.Popen(["streamboot", "run", "app.yaml"], cwd=project, env=env,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Redis.from_url(redis_server.url, decode_responses=True) as redis:
            def drained() -> bool:
                groups = redis.xinfo_groups("orders")
                return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0

            wait_for(drained, timeout=20)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert [line for line in out.splitlines() if line.startswith("order ")] == [
        "order o0: 1 unit(s)", "order o1: 2 unit(s)", "order o2: 3 unit(s)"]
    status = sh("streamboot", "status", "-c", "app.yaml")
    assert status.returncode == 0, status.stderr
    assert "orders: 3 entries" in status.stdout


def test_the_testing_page_example_passes_in_that_project(tmp_path: Path) -> None:
    """docs/testing.md's first test, in the getting-started project, run by pytest from
    the project's root: the plugin (an entry point) provides the fixtures; no conftest."""
    project = tmp_path / "orders-app"
    for name, text in documented_files().items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "orders" / "__init__.py").touch()
    page = (DOC.parent / "testing.md").read_text()
    body = re.findall(r"```python\n(# tests/test_orders.py\n.*?)```", page, re.S)[0]
    (project / "tests").mkdir()
    (project / "tests" / "test_orders.py").write_text(body)
    toml = re.findall(r"```toml\n# pyproject.toml\n(.*?)```", page, re.S)[0]
    (project / "pyproject.toml").write_text(toml)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMBOOT_") and k not in ("PYTHONPATH", "REDIS_URL")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-W", "error", "tests/test_orders.py"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "streamboot test server: " in done.stdout
