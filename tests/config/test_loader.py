"""The application file as a user writes it: errors name the file and key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streamboot.config import ConfigError, load_settings
from streamboot.config.models import default_consumer_name
from streamboot.listener.spec import resolve_listener

GOOD = """
redis:
  url: ${TEST_REDIS_URL:redis://127.0.0.1:6379/0}
container:
  poll_timeout: 500ms
  batch_size: 50
listeners:
  orders:
    stream: orders
    group: order-processors
    handler: sample_app.handlers:OrderHandler
    concurrency: 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "application.yaml"
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    return [str(p) for p in info.value.problems]


def test_good_file_loads_with_defaults_and_overrides(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), env={})
    listener = settings.listeners["orders"]
    spec = resolve_listener("orders", listener, settings.container)
    assert spec.batch_size == 50  # container default
    assert spec.concurrency == 4  # listener override
    assert spec.poll_timeout == timedelta(milliseconds=500)
    assert spec.shutdown_timeout == timedelta(seconds=30)
    assert spec.consumer == default_consumer_name()
    assert settings.redis.url == "redis://127.0.0.1:6379/0"


def test_interpolation_from_environment(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), env={"TEST_REDIS_URL": "redis://h:1/2"})
    assert settings.redis.url == "redis://h:1/2"


def test_environment_overrides_any_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMBOOT_CONTAINER__BATCH_SIZE", "7")
    monkeypatch.setenv("STREAMBOOT_LISTENERS__ORDERS__CONCURRENCY", "2")
    monkeypatch.setenv("STREAMBOOT_REDIS__CLIENT_NAME", "from-env")
    settings = load_settings(write(tmp_path, GOOD), env={})
    assert settings.container.batch_size == 7
    assert settings.listeners["orders"].concurrency == 2
    assert settings.listeners["orders"].stream == "orders"  # the rest of the YAML stays
    assert settings.redis.client_name == "from-env"


def test_unknown_key_wrong_type_and_bad_duration_all_reported(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """
container:
  batch_sise: 10
  concurrency: lots
listeners:
  orders:
    stream: orders
    group: g
    handler: x:y
    poll_timeout: 2x
"""))
    text = "\n".join(found)
    assert len(found) == 3
    assert "container.batch_sise: unknown key; expected one of: poll_timeout, batch_size" in text
    assert "container.concurrency: Input should be a valid integer" in text
    assert "listeners.orders.poll_timeout: '2x' is not a duration" in text
    assert all(line.startswith(str(tmp_path / "application.yaml")) for line in found)


def test_missing_required_key(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "listeners:\n  orders:\n    stream: s\n    group: g\n"))
    assert found == [f"{tmp_path / 'application.yaml'}: listeners.orders.handler: Field required"]


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "redis:\n  url: [unclosed\n"))
    assert "invalid YAML: line" in found


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "- a\n- b\n"))
    assert "expected a mapping at the top level, got list" in found


def test_missing_file(tmp_path: Path) -> None:
    (found,) = problems(tmp_path / "nope.yaml")
    assert "cannot read the file" in found


def test_unset_variable_is_an_error(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "redis:\n  url: ${NOT_SET_ANYWHERE}\n"))
    assert "redis.url" in found
    assert "NOT_SET_ANYWHERE is not set" in found


def test_unset_variables_and_other_problems_are_reported_together(tmp_path: Path) -> None:
    """An unset variable used to hide every other problem of the file (a new user's trial)."""
    found = problems(write(tmp_path, """
redis:
  url: ${NOT_SET_ANYWHERE}
listeners:
  orders:
    stream: ${ALSO_NOT_SET}
    group: g
    handler: "tests.handlers:RawHandler"
    batch_sise: 10
"""))
    assert len(found) == 3, found
    assert any("redis.url" in f and "NOT_SET_ANYWHERE is not set" in f for f in found)
    assert any("listeners.orders.stream" in f and "ALSO_NOT_SET is not set" in f for f in found)
    assert any("listeners.orders.batch_sise: unknown key" in f for f in found)


def test_password_never_echoed(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """
redis:
  url: http://user:hunter2@localhost:6379
  password: 12345
"""))
    text = "\n".join(found)
    assert "redis.url" in text
    assert "hunter2" not in text


def test_poll_timeout_must_be_shorter_than_socket_timeout(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, """
redis: {socket_timeout: 1s}
listeners:
  orders: {stream: o, group: g, handler: a:b, poll_timeout: 2s}
"""))
    assert "poll_timeout (2.0s) must be shorter than redis.socket_timeout (1.0s)" in found


def test_block_zero_rejected(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "container: {poll_timeout: 0}\n"))
    assert "BLOCK 0 would block forever" in found


def test_start_id_validated(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, """
listeners:
  orders: {stream: o, group: g, handler: a:b, start_id: latest}
"""))
    assert "listeners.orders.start_id" in found


def test_safe_url_redacts_password(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "redis: {url: 'redis://u:pw@h:1/0'}\n"), env={})
    assert settings.redis.safe_url == "redis://u:***@h:1/0"
    assert "pw" not in repr(settings.redis.password)


def test_the_shipped_application_file_is_valid() -> None:
    settings = load_settings(Path(__file__).parents[2] / "config" / "application.yaml",
                             env={"REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "orders" in settings.listeners


@pytest.mark.parametrize(("where", "key"), [
    ("container", "poll_timeout"), ("container", "handler_timeout"),
    ("listener", "poll_timeout"), ("listener", "handler_timeout")])
def test_a_wait_of_zero_is_refused_everywhere(where: str, key: str) -> None:
    from streamboot.config import settings_from_mapping

    listener = {"stream": "s", "group": "g", "handler": "x:Y"}
    data: dict[str, object] = {"listeners": {"a": listener}}
    if where == "container":
        data["container"] = {key: "0s"}
    else:
        listener[key] = "0ms"
    with pytest.raises(ConfigError, match=f"{key} must be at least 1ms"):
        settings_from_mapping(data)


def test_handler_timeout_defaults_and_overrides() -> None:
    from streamboot.config import settings_from_mapping

    settings = settings_from_mapping({"container": {"handler_timeout": "90s"}, "listeners": {
        "a": {"stream": "s", "group": "g", "handler": "x:Y"},
        "b": {"stream": "s", "group": "h", "handler": "x:Y", "handler_timeout": "2h"}}})
    specs = {n: resolve_listener(n, ls, settings.container)
             for n, ls in settings.listeners.items()}
    assert specs["a"].handler_timeout == timedelta(seconds=90)
    assert specs["b"].handler_timeout == timedelta(hours=2)


def test_an_environment_override_may_give_a_duration_as_a_bare_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("listeners:\n  orders: {stream: o, group: g, handler: x, "
                    "shutdown_timeout: \"${GRACE:4}\"}\n")
    monkeypatch.setenv("STREAMBOOT_LISTENERS__ORDERS__POLL_TIMEOUT", "3")
    listener = load_settings(path).listeners["orders"]
    assert listener.poll_timeout == timedelta(seconds=3)
    assert listener.shutdown_timeout == timedelta(seconds=4)


def test_cleanup_that_would_delete_live_consumers_is_refused(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, """
container: {poll_timeout: 2s}
listeners:
  orders: {stream: o, group: g, handler: "m:H", cleanup: {consumer_idle: 1s}}
"""))
    assert "cleanup.consumer_idle (1s) must be at least twice poll_timeout (2s)" in found
