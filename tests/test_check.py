"""`streamboot check` catches what will fail, all at once — and `run` refuses the same.

Each test runs the real command against a real redis-server and asserts the exit code
and the exact lines a user sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import streamboot


def problems(result: object) -> list[str]:
    """The problem lines of a failed check (after its 'N problems:' header)."""
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    return [line.strip() for line in lines[1:]]


def write(tmp_path: Path, text: str, url: str) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(f'redis: {{url: "{url}"}}\n' + text)
    return path


def test_model_errors_and_handler_errors_are_reported_together(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    """The example of docs/getting-started.md, exactly."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("""container:
  batch_sise: 10
  concurrency: many
listeners:
  orders:
    stream: orders
    group: g
    handler: no_such_pkg.handlers:Nope
""")
    result = streamboot("check", str(bad), env=project_env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "3 problems:"
    assert problems(result) == [
        f"{bad}: container.concurrency: Input should be a valid integer, unable to parse "
        "string as an integer (got 'many')",
        f"{bad}: container.batch_sise: unknown key; expected one of: poll_timeout, "
        "batch_size, concurrency, shutdown_timeout, handler_timeout, middleware",
        f"{bad}: listeners.orders.handler: listener 'orders', handler "
        "'no_such_pkg.handlers:Nope': cannot import 'no_such_pkg.handlers': No module named "
        "'no_such_pkg' (modules are imported from the current directory and PYTHONPATH: run "
        "from your project's root)"]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "the file is empty: declare at least one listener (see docs/configuration.md)"),
    ("listeners: {}\n", "listeners: no listener is declared (or all are disabled): run would "
                        "have nothing to do"),
])
def test_a_file_with_nothing_to_run_is_an_error(
        tmp_path: Path, project_env: dict[str, str], text: str, expected: str) -> None:
    path = write(tmp_path, text, project_env["REDIS_URL"]) if text else tmp_path / "app.yaml"
    path.touch()
    result = streamboot("check", str(path), env=project_env)
    assert result.returncode == 2, result.stdout
    assert problems(result) == [f"{path}: {expected}"]
    ran = streamboot("run", str(path), env=project_env)
    assert ran.returncode == 2  # run refuses it too, instead of idling for ever
    assert f"{path}: " in ran.stderr


def test_a_listener_given_twice_names_both_lines(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    path = write(tmp_path, """listeners:
  orders: {stream: a, group: g, handler: "tests.handlers:RawHandler"}
  analytics: {stream: a, group: h, handler: "tests.handlers:RawHandler"}
  orders: {stream: b, group: g, handler: "tests.handlers:RawHandler"}
""", project_env["REDIS_URL"])
    result = streamboot("check", str(path), env=project_env)
    assert result.returncode == 2
    assert problems(result) == [
        f"{path}: invalid YAML: line 5, column 3: key 'orders' is given twice (lines 3 and "
        "5); the second would silently replace the first"]


@pytest.mark.parametrize(("handler", "expected"), [
    ("tests.handlers:TextHandler", "TextHandler: payload type str is not one the codecs "
     "build: use a pydantic model, a dataclass, a TypedDict, or dict[str, str] for the raw "
     "fields"),
    ("tests.handlers:NoHandleMethod", "NoHandleMethod has no handle(self, message) method"),
    ("tests.handlers:TwoArgumentHandle", "TwoArgumentHandle.handle(self, message: "
     "'Message[dict[str, str]]', extra: 'str') -> 'None' cannot be called as "
     "handle(self, message)"),
])
def test_the_handler_contract_is_checked_not_just_the_import(
        tmp_path: Path, project_env: dict[str, str], handler: str, expected: str) -> None:
    path = write(tmp_path, f'listeners:\n  l: {{stream: s, group: g, handler: "{handler}"}}\n',
                 project_env["REDIS_URL"])
    result = streamboot("check", str(path), env=project_env)
    assert result.returncode == 2
    assert problems(result) == [
        f"{path}: listeners.l.handler: listener 'l', handler '{handler}': {expected}"]
    ran = streamboot("run", str(path), env=project_env)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines()[-1].strip() == problems(result)[0]


def test_rotation_that_cannot_pre_create_is_refused(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    path = write(tmp_path, """listeners:
  l:
    stream: s
    group: g
    handler: "tests.handlers:RawHandler"
    rotation: {key_format: "s:%Y%m%d%H", precreate: 1m, check_interval: 5m}
""", project_env["REDIS_URL"])
    result = streamboot("check", str(path), env=project_env)
    assert result.returncode == 2
    assert problems(result) == [
        f"{path}: listeners.l.rotation: rotation.check_interval (5m) is longer than "
        "rotation.precreate (1m): the job might not run between the moment the next period "
        "may be created and its start, so it would not be pre-created"]


def test_a_handler_module_that_fails_at_import_is_one_problem_not_a_traceback(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    """The user's module raises while it is imported, or does not parse: check and run say
    which module failed and where, on one line each, exit 2 (a new user's trial)."""
    (tmp_path / "explodes.py").write_text('x = 1\nraise RuntimeError("boom at import")\n')
    (tmp_path / "unparsable.py").write_text("def handle(:\n")
    path = write(tmp_path, """application: {container: "nocolon"}
listeners:
  a: {stream: a, group: g, handler: "explodes:X"}
  b: {stream: b, group: g, handler: "unparsable:X"}
  c: {stream: c, group: g, handler: ":X"}
""", project_env["REDIS_URL"])
    env = {**project_env, "PYTHONPATH": str(tmp_path)}
    result = streamboot("check", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert problems(result) == [
        f"{path}: application.container: 'nocolon' is not an import path of the form "
        "package.module:Name"]
    path.write_text(path.read_text().replace('application: {container: "nocolon"}\n', ""))
    result = streamboot("check", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert problems(result) == [
        f"{path}: listeners.a.handler: listener 'a', handler 'explodes:X': importing "
        f"'explodes' failed: RuntimeError: boom at import ({tmp_path}/explodes.py, line 2)",
        f"{path}: listeners.b.handler: listener 'b', handler 'unparsable:X': importing "
        f"'unparsable' failed: SyntaxError: invalid syntax ({tmp_path}/unparsable.py, line 1)",
        f"{path}: listeners.c.handler: listener 'c', handler ':X': ':X' is not an import "
        "path of the form package.module:Name"]
    ran = streamboot("run", str(path), env=env, cwd=tmp_path)
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert "boom at import" in ran.stderr


def test_a_problem_set_by_the_environment_names_the_variable(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    """It read as the file's fault, and a misspelt listener in a variable as three missing
    keys of the file (two new users' trials)."""
    path = write(tmp_path, """listeners:
  orders: {stream: a, group: g, handler: "tests.handlers:LoggingHandler"}
""", project_env["REDIS_URL"])
    env = {**project_env, "STREAMBOOT_LISTENERS__ORDERS__CONCURRENCY": "lots",
           "STREAMBOOT_LISTENERS__ORDRES__BATCH_SIZE": "4"}
    result = streamboot("check", str(path), env=env)
    assert result.returncode == 2, result.stdout
    assert problems(result) == [
        f"{path}: listeners.orders.concurrency: Input should be a valid integer, unable to "
        "parse string as an integer (got 'lots') — set by the environment variable "
        "STREAMBOOT_LISTENERS__ORDERS__CONCURRENCY",
        f"{path}: listeners.ordres: listener 'ordres' is not in the file; only the "
        "environment variable STREAMBOOT_LISTENERS__ORDRES__BATCH_SIZE names it (a misspelt "
        "listener name?); lacks: stream, group, handler"]
