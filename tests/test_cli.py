"""The ``streamboot`` command as a user runs it: a real process, real Redis, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from redis import Redis

from tests.conftest import stop_process, wait_for

ROOT = Path(__file__).resolve().parents[1]


def streamboot(
    *args: str, env: dict[str, str], module: bool = False, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "streamboot", *args] if module else [
        str(Path(sys.executable).with_name("streamboot")), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_check_accepts_the_shipped_file(project_env: dict[str, str]) -> None:
    result = streamboot("check", "config/application.yaml", env=project_env)
    assert result.returncode == 0, result.stderr
    assert "OK config/application.yaml: 3 listeners" in result.stdout  # + notifications


def test_python_dash_m_streamboot_works_too(project_env: dict[str, str]) -> None:
    result = streamboot("check", "config/application.yaml", env=project_env, module=True)
    assert result.returncode == 0, result.stderr


def test_check_reports_each_problem_with_its_key_path(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
container:
  batch_sise: 10
  concurrency: many
listeners:
  orders: {stream: orders, group: g, handler: "sample_app.handlers:OrderHandler"}
""")
    result = streamboot("check", str(bad), env=project_env)
    assert result.returncode == 2
    assert f"{bad}: container.batch_sise: unknown key" in result.stderr
    assert f"{bad}: container.concurrency: Input should be a valid integer" in result.stderr


def test_check_reports_unimportable_handler_and_wrong_key_type(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    with Redis.from_url(project_env["REDIS_URL"]) as redis:
        redis.set("clash", "string")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"""
redis: {{url: "{project_env['REDIS_URL']}"}}
listeners:
  orders: {{stream: orders, group: g, handler: "no_such_pkg.handlers:Nope"}}
  clash: {{stream: clash, group: g, handler: "tests.handlers:LoggingHandler"}}
""")
    result = streamboot("check", str(bad), env=project_env)
    assert result.returncode == 2
    assert "listeners.orders.handler: listener 'orders', handler 'no_such_pkg.handlers:Nope': " \
           "cannot import 'no_such_pkg.handlers'" in result.stderr
    assert "listeners.clash.stream: key 'clash' holds a string, not a stream" in result.stderr


def test_check_reports_redis_down_without_the_password(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    from streamboot.devserver import free_port

    port = free_port()
    bad = tmp_path / "down.yaml"
    bad.write_text(f"redis: {{url: 'redis://user:s3cret@127.0.0.1:{port}/0'}}\n"
                   "listeners: {a: {stream: s, group: g, handler: 'tests.handlers:RawHandler'}}\n")
    result = streamboot("check", str(bad), env=project_env)
    assert result.returncode == 2
    assert f"redis.url: cannot reach redis at 127.0.0.1:{port} (connection refused)" \
        in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_run_handles_entries_and_stops_on_sigterm_with_exit_0(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    out = tmp_path / "handled.txt"
    app = tmp_path / "app.yaml"
    app.write_text(f"""
redis: {{url: "{project_env['REDIS_URL']}"}}
container: {{poll_timeout: 100ms}}
listeners:
  files: {{stream: cli-run, group: g, handler: "tests.handlers:CountingFileHandler"}}
""")
    redis = Redis.from_url(project_env["REDIS_URL"], decode_responses=True)
    ids = [redis.xadd("cli-run", {"out": str(out)}) for _ in range(20)]
    with subprocess.Popen([str(Path(sys.executable).with_name("streamboot")), "run", str(app)],
                          cwd=ROOT, env=project_env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            wait_for(lambda: out.exists() and len(out.read_text().split()) == 20)
        finally:
            stderr = stop_process(proc)
    assert proc.returncode == 0, stderr
    assert sorted(out.read_text().split()) == sorted(ids)
    assert redis.xpending("cli-run", "g")["pending"] == 0
    redis.close()
    assert "SIGTERM received: stopping gracefully" in stderr


def test_run_with_bad_file_exits_2(tmp_path: Path, project_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: {orders: {stream: s}}\n")
    result = streamboot("run", str(bad), env=project_env)
    assert result.returncode == 2
    assert "listeners.orders.group: Field required" in result.stderr


def test_a_blank_or_spaced_member_id_is_an_option_error(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    """``--member-id`` is blamed as the option it is, not as the environment variable it
    is handed on in."""
    for bad, said in (("", "must not be blank"), ("pod 0", "'pod 0' must be one word")):
        result = streamboot("run", "config/application.yaml", "--member-id", bad,
                            env=project_env)
        assert result.returncode == 2, result.stderr
        assert f"Invalid value for '--member-id': {said}" in result.stderr, result.stderr
        assert "STREAMBOOT_MEMBERSHIP__MEMBER_ID" not in result.stderr


def test_sample_app_starts_its_own_redis_when_no_url(project_env: dict[str, str]) -> None:
    env = {k: v for k, v in project_env.items() if k != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "sample_app", "--users", "10", "--stock",
                             "5", "--orders-per-user", "2"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    started = " ".join(result.stdout.split())  # rich wraps long lines
    assert "started a throwaway redis-server 7." in started or \
        "started a throwaway valkey-server 9." in started, result.stdout
    assert " at redis://127.0.0.1:" in started
    assert "all invariants hold" in result.stdout


def _drained(redis: Redis, stream: str, group: str) -> bool:
    """The group exists, has read everything, and holds nothing pending."""
    groups = {g["name"]: g for g in redis.xinfo_groups(stream)} if redis.exists(stream) else {}
    return group in groups and groups[group]["lag"] == 0 and groups[group]["pending"] == 0


def test_json_lines_logging_from_the_environment(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    import json

    app = tmp_path / "app.yaml"
    app.write_text(f"""
redis: {{url: "{project_env['REDIS_URL']}"}}
container: {{poll_timeout: 100ms}}
listeners:
  files: {{stream: cli-json, group: g, handler: "tests.handlers:LoggingHandler"}}
""")
    env = {**project_env, "STREAMBOOT_LOGGING__JSON_LINES": "true"}
    with subprocess.Popen([str(Path(sys.executable).with_name("streamboot")), "run", str(app)],
                          cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as proc:
        with Redis.from_url(project_env["REDIS_URL"], decode_responses=True) as redis:
            entry = redis.xadd("cli-json", {"a": "b"})
            wait_for(lambda: _drained(redis, "cli-json", "g"))
        stderr = stop_process(proc, signal.SIGINT)
    records = [json.loads(line)["record"] for line in stderr.splitlines() if line.strip()]
    (user_line,) = [r for r in records if r["message"].startswith("user log line")]
    assert user_line["extra"]["entry_id"] == entry
    assert user_line["extra"]["stream"] == "cli-json"
    assert proc.returncode == 0
