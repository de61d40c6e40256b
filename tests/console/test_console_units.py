"""The console's pure decisions (who may write, what a form selects, what a chart draws)
and its command's refusals, each as a user meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamboot.console.app import Filter, Pick, clipped, printable
from streamboot.console.charts import chart
from streamboot.console.history import History, Sample, rates
from streamboot.console.security import (
    Caller,
    caller,
    cross_site,
    csrf_value,
    host_allowed,
    may_read,
    write_refusal,
)
from streamboot.console.settings import ConsoleSettings, is_loopback
from streamboot.devserver import free_port
from streamboot.wire.records import StreamEntry

TOKEN = "a-token-of-sixteen-plus"


def _who(cookie: str | None = None, bearer: str | None = None, origin: str | None = None,
         host: str | None = "127.0.0.1:8089") -> Caller:
    return Caller(cookie, bearer, origin, host)


def test_a_write_needs_a_live_session_and_its_csrf_value_from_this_site() -> None:
    sessions = {"s1"}
    csrf = csrf_value(TOKEN, "s1")
    assert "token" in (write_refusal(TOKEN, sessions, _who(), csrf) or "")
    assert "token" in (write_refusal(TOKEN, sessions, _who(cookie="forged"), csrf) or "")
    assert "token" in (write_refusal(TOKEN, set(), _who(cookie="s1"), csrf) or "")  # ended
    assert "CSRF" in (write_refusal(TOKEN, sessions, _who(cookie="s1"), None) or "")
    assert "CSRF" in (write_refusal(TOKEN, sessions | {"s2"}, _who(cookie="s2"), csrf) or "")
    assert "another site" in (write_refusal(
        TOKEN, sessions, _who(cookie="s1", origin="http://evil.example"), csrf) or "")
    assert write_refusal(TOKEN, sessions, _who(cookie="s1", origin="http://127.0.0.1:8089"),
                         csrf) is None
    assert write_refusal(TOKEN, sessions, _who(bearer=TOKEN), None) is None  # a script
    assert "another site" in (write_refusal(
        TOKEN, sessions, _who(bearer=TOKEN, origin="http://evil.example"), None) or "")
    assert write_refusal(TOKEN, sessions, _who(bearer="wrong"), csrf) is not None


def test_reading_is_open_on_loopback_and_needs_signing_in_elsewhere() -> None:
    assert may_read(TOKEN, set(), True, _who())
    assert not may_read(TOKEN, set(), False, _who())
    assert not may_read(TOKEN, set(), False, _who(cookie="s1"))
    assert may_read(TOKEN, {"s1"}, False, _who(cookie="s1"))
    assert not cross_site(_who(origin=None))
    assert cross_site(_who(origin="http://127.0.0.1:9999"))


def test_the_origin_falls_back_to_the_referer() -> None:
    who = caller({"referer": "http://evil.example/page?x=1", "host": "127.0.0.1:1"}, {})
    assert who.origin == "http://evil.example"
    assert caller({"authorization": "Bearer abc"}, {}).bearer == "abc"


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8089", True), ("localhost:8089", True), ("[::1]:8089", True),
    ("evil.example", False), ("evil.example:8089", False), (None, False)])
def test_a_loopback_console_answers_only_to_loopback_names(host: str | None,
                                                           allowed: bool) -> None:
    assert host_allowed(host, "127.0.0.1", loopback=True) is allowed
    assert host_allowed(host, "0.0.0.0", loopback=False)


def test_a_non_loopback_bind_needs_a_token_that_was_given() -> None:
    assert is_loopback("127.0.0.2")
    assert is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ValidationError, match="not a loopback address"):
        ConsoleSettings(host="0.0.0.0", token=TOKEN, token_given=False)
    ConsoleSettings(host="0.0.0.0", token=TOKEN, token_given=True)
    with pytest.raises(ValidationError, match="at least 16"):
        ConsoleSettings(token="short", token_given=True)
    with pytest.raises(ValidationError, match="http"):
        ConsoleSettings(prometheus_url="localhost:9090")
    with pytest.raises(ValidationError, match="sample-every"):
        ConsoleSettings(sample_every=timedelta(hours=2))


def test_a_filter_reads_field_lines_and_selects_by_the_original_fields() -> None:
    pairs = ["order", "o-1", "dlq_reason", "max_deliveries", "dlq_stream", "s",
             "dlq_fields", "1"]
    letter = StreamEntry("5-0", dict(zip(pairs[::2], pairs[1::2], strict=True)), pairs)
    assert Filter.parse("", "order=o-1").accepts(letter)
    assert Filter.parse("max_deliveries", "").accepts(letter)
    assert not Filter.parse("invalid_payload", "").accepts(letter)
    assert not Filter.parse("", "dlq_reason=max_deliveries").accepts(letter)  # ours, not its
    with pytest.raises(ValueError, match="expected field=value"):
        Filter.parse("", "order")
    assert Pick.parse("5-0 {a}:dlq") == Pick("{a}:dlq", "5-0")
    assert Pick.parse("5 {a}:dlq") == Pick.parse("5-00 {a}:dlq") == Pick("{a}:dlq", "5-0")
    assert Pick.parse("5-0 with space") == Pick("with space", "5-0")
    assert Pick.parse("nonsense") is None
    assert Pick.parse("5-0") is None


def test_values_are_shown_escaped_and_long_ones_clipped() -> None:
    assert printable("a\x00b\x1bc\td") == "a\\x00b\\x1bc\td"
    long = "x" * 5000
    assert clipped(long).startswith("x" * 300)
    assert clipped(long).endswith("… (5,000 bytes in all)")
    assert clipped("short") == "short"


def test_rates_come_from_entries_read_and_skip_a_counter_that_went_back() -> None:
    samples = [Sample(0, 0, 0, 100), Sample(2, 0, 0, 120), Sample(4, 0, 0, 10),
               Sample(6, 0, 0, None), Sample(8, 0, 0, 30)]
    assert rates(samples) == [(2, 10.0)]
    history = History(keep=2)
    for sample in samples:
        history.add("l", sample)
    assert [t for t, _ in history.series("l")["pending"]] == [6, 8]  # bounded


def test_a_chart_draws_the_points_in_its_window_scaled_to_the_peak() -> None:
    drawn = chart("Lag", [(0, 5.0), (50, 10.0), (100, 0.0), (200, 99.0)], 0, 100)
    assert (drawn.last, drawn.peak) == (0.0, 10.0)
    assert 'data-points="3"' in drawn.svg
    assert "<polyline" in drawn.svg
    assert "no samples yet" in chart("Lag", [], 0, 100).svg
    assert "<script" not in chart("<script>", [], 0, 1).svg  # the title is escaped


def _console(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamboot", "console", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_the_command_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(f"redis: {{url: 'redis://127.0.0.1:{free_port()}/0'}}\nlisteners: {{}}\n")
    exposed = _console(str(app), "--host", "0.0.0.0")
    assert exposed.returncode == 2
    assert exposed.stderr.strip().splitlines() == [
        "streamboot: --host 0.0.0.0 is not a loopback address: give --token (or "
        "STREAMBOOT_CONSOLE_TOKEN), which every page then asks for"]
    short = _console(str(app), "--token", "short")
    assert (short.returncode, len(short.stderr.strip().splitlines())) == (2, 1)
    assert "--token" in short.stderr
    assert "at least 16" in short.stderr
    bad_every = _console(str(app), "--sample-every", "soon")
    assert (bad_every.returncode, bad_every.stderr.count("\n")) == (2, 1)
    unreachable = _console(str(app))
    assert unreachable.returncode == 3
    assert len(unreachable.stderr.strip().splitlines()) == 1
    assert "cannot reach redis" in unreachable.stderr or "refused" in unreachable.stderr
    by_option = _console("--config", str(app))  # --config works as the argument does
    assert by_option.returncode == 3
    env = {k: v for k, v in os.environ.items() if k != "STREAMBOOT_CONFIG"}
    assert _console(env={**env, "STREAMBOOT_CONFIG": str(app)}).returncode == 3
    assert "--prometheus: 'x' is not" in _console(str(app), "--prometheus", "x").stderr
    missing = _console(str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
