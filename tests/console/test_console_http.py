"""The console's writes over HTTP (as a script sends them, with the token as a bearer):
a filter reaches every dead letter it matches, not only those the page lists, and never
one that arrived after its confirmation; an id given twice is one dead letter."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import yaml

from streamboot.devserver import RedisServer
from tests.console.browser import console_process

TOKEN = "console-http-token-0123456789"
DLQ, SOURCE = "{shop}:orders:dlq", "{shop}:orders"


def _post(url: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _ids(client: redis.Redis) -> list[str]:
    return [str(entry[0]) for entry in client.xrange(DLQ) or []]


def _dead_letter(client: redis.Redis, n: int, reason: str = "max_deliveries") -> str:
    return str(client.xadd(DLQ, {"n": str(n), "dlq_reason": reason, "dlq_error": "",
                                 "dlq_stream": SOURCE, "dlq_id": f"{n}-0",
                                 "dlq_fields": "1"}))


def test_a_filter_reaches_every_match_up_to_its_confirmation(tmp_path: Path) -> None:
    with RedisServer() as server:
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump({"redis": {"url": server.url}, "listeners": {
            "orders": {"stream": SOURCE, "group": "g", "handler": "tests.ops_app:OpsHandler"}}}))
        client = redis.Redis.from_url(server.url, decode_responses=True)
        for n in range(7):
            _dead_letter(client, n)
        _dead_letter(client, 99, reason="invalid_payload")
        with console_process(config, "--token", TOKEN, "--dead-letters-shown", "3") as base:
            # (the file given as the argument; --config and STREAMBOOT_CONFIG work too)
            path = f"{base}/listeners/orders/dead-letters"
            with urllib.request.urlopen(f"{path}?reason=max_deliveries", timeout=10) as page:
                listed = page.read().decode()
            assert "Replay all 7 matching" in listed  # 7 counted, 3 listed
            assert listed.count('name="pick"') == 3
            with urllib.request.urlopen(f"{path}?where=n%3D6", timeout=10) as page:
                beyond = page.read().decode()  # the 7th: past the listed ones, found
            assert beyond.count('name="pick"') == 1
            assert "Replay all 1 matching" in beyond
            status, confirm = _post(f"{path}/confirm?scope=filter",
                                    "action=replay&reason=max_deliveries&where=")
            assert status == 200
            assert "Replay 7 dead letters?" in confirm
            upto = re.findall(r'name="upto" value="([^"]+)"', confirm)
            assert len(upto) == 1
            late = _dead_letter(client, 7)  # arrives after the confirmation: left alone
            form = "action=replay&scope=filter&reason=max_deliveries&where=" + "".join(
                f"&upto={quote(u)}" for u in upto)
            status, done = _post(f"{path}/apply", form)
            assert status == 200
            assert "Replayed 7 dead letters" in done
            assert client.xlen(SOURCE) == 7
            left = _ids(client)
            assert len(left) == 2
            assert left[1] == late  # and the invalid_payload one, first

            # An id given twice is one dead letter; a purge names only what it deleted.
            pick = quote(f"{late} {DLQ}")
            status, done = _post(f"{path}/apply", f"action=replay&pick={pick}&pick={pick}")
            assert "Replayed 1 dead letter" in done
            assert client.xlen(SOURCE) == 8
            (other,) = _ids(client)
            gone = quote(f"1-1 {DLQ}")
            mine = quote(f"{other} {DLQ}")
            status, done = _post(f"{path}/apply", f"action=purge&pick={mine}&pick={gone}")
            assert "Deleted 1 dead letter" in done
            assert other in done
            assert "1-1" not in done
            assert client.xlen(DLQ) == 0
            client.close()

            # Redis goes away: every page says so (503), no traceback; back when it is.
            server.stop()
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/", timeout=10)
            assert refused.value.code == 503
            assert "Redis is unreachable" in refused.value.read().decode()
            with pytest.raises(urllib.error.HTTPError) as api:
                urllib.request.urlopen(f"{base}/api/overview", timeout=10)
            assert api.value.code == 503
            assert json.loads(api.value.read())["error"].startswith("redis unreachable")


def test_sigterm_and_ctrl_c_end_the_console_with_exit_0(tmp_path: Path) -> None:
    with RedisServer() as server:
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump({"redis": {"url": server.url}, "listeners": {}}))
        for signum in (signal.SIGTERM, signal.SIGINT):
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamboot", "console", str(config), "--port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                # SIGINT at its default, as a terminal's Ctrl-C finds it (a suite run as a
                # background job ignores SIGINT, and children inherit that).
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            assert proc.stdout is not None
            try:
                started = re.search(r"on (http://\S+)/", proc.stdout.readline())
                assert started is not None
                with urllib.request.urlopen(f"{started.group(1)}/login", timeout=10) as page:
                    assert page.status == 200  # serving: the signal meets a running console
                proc.send_signal(signum)
                code = proc.wait(15)
                said = proc.stdout.read()
                assert code == 0, f"{signum!r}: exit {code}: {said}"
                assert "console stopped" in said
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
                proc.stdout.close()
