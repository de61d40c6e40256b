"""TLS end to end: a redis-server that speaks only TLS to the test and requires client
certificates; a listener, the admin commands and the test kit over it, with the CA and
the client certificate given in the application file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamboot.config import settings_from_mapping
from streamboot.devserver import RedisServer
from streamboot.errors import ConfigError
from tests.conftest import stop_process, wait_for
from tests.tls import make_certificates, tls_server

ROOT = Path(__file__).resolve().parents[1]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secured(certs: Path) -> Iterator[tuple[RedisServer, str]]:
    server, tls_port = tls_server(certs)
    with server:
        yield server, f"rediss://127.0.0.1:{tls_port}/0"


def tls_block(certs: Path, client: bool = True) -> str:
    lines = [f"    ca_file: {certs / 'ca.crt'}"]
    if client:
        lines += [f"    cert_file: {certs / 'client.crt'}", f"    key_file: {certs / 'client.key'}"]
    return "\n".join(lines)


def app_file(tmp_path: Path, url: str, certs: Path, client: bool = True) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(f"""redis:
  url: "{url}"
  tls:
{tls_block(certs, client)}
container: {{poll_timeout: 100ms}}
listeners:
  orders: {{stream: tls-orders, group: g, handler: "tests.handlers:CountingFileHandler"}}
""")
    return path


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("STREAMBOOT_") and k != "REDIS_URL"}


def sb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STREAMBOOT, *args], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=60)


def test_a_listener_and_the_operator_commands_over_tls(
        tmp_path: Path, certs: Path, secured: tuple[RedisServer, str]) -> None:
    _, url = secured
    config = app_file(tmp_path, url, certs)
    handled = tmp_path / "handled.ids"
    proc = subprocess.Popen([STREAMBOOT, "run", str(config)], cwd=ROOT, env=env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        published = sb("publish", "tls-orders", f"out={handled}", "-c", str(config))
        assert published.returncode == 0, published.stderr
        wait_for(lambda: handled.exists() and handled.read_text().count("\n") == 1, timeout=30)
        status = sb("status", "--json", "-c", str(config))
        assert status.returncode == 0, status.stderr
        assert '"key": "tls-orders"' in status.stdout
    finally:
        stderr = stop_process(proc)
    assert proc.returncode == 0, stderr


def test_the_test_kit_over_tls(certs: Path, secured: tuple[RedisServer, str]) -> None:
    import asyncio

    from streamboot.testing import run_app

    _, url = secured
    settings = settings_from_mapping({
        "redis": {"url": url, "tls": {"ca_file": str(certs / "ca.crt"),
                                      "cert_file": str(certs / "client.crt"),
                                      "key_file": str(certs / "client.key")}},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"l": {"stream": "tls-kit", "group": "g",
                            "handler": "tests.handlers:LoggingHandler"}}})

    async def scenario() -> None:
        async with run_app(settings, url=url) as app:
            entry = await app.publish_fields("l", {"n": "1"})
            await app.handled(entry)

    asyncio.run(scenario())


def test_a_server_certificate_that_does_not_verify_ends_run_with_one_line(
        tmp_path: Path, certs: Path, secured: tuple[RedisServer, str]) -> None:
    """The system's CAs instead of the test CA: no retry heals that, so no retry."""
    _, url = secured
    config = app_file(tmp_path, url, certs)
    config.write_text(config.read_text().replace(str(certs / "ca.crt"),
                                                 "/etc/ssl/certs/ca-certificates.crt"))
    done = subprocess.run([STREAMBOOT, "run", str(config)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert done.stderr.strip().splitlines()[-1] == (
        f"streamboot: cannot start: TLS handshake with redis 127.0.0.1:{port} failed: "
        "self-signed certificate in certificate chain (check redis.tls: ca_file, cert_file, "
        "key_file)")


def test_without_the_client_certificate_run_says_what_is_missing(
        tmp_path: Path, certs: Path, secured: tuple[RedisServer, str]) -> None:
    """The server refuses it after the handshake: either the TLS alert (exit 3) or a reset,
    retried with a line that names the client certificate — never a bare "reset"."""
    _, url = secured
    config = app_file(tmp_path, url, certs, client=False)
    proc = subprocess.Popen([STREAMBOOT, "run", str(config)], cwd=ROOT, env=env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first line comes within the first attempt
    finally:
        stop_process(proc)
    assert ("certificate required" in first) or ("client certificate" in first), first


def test_tls_settings_are_checked_when_the_file_is_read(tmp_path: Path, certs: Path) -> None:
    with pytest.raises(ConfigError) as plain:
        settings_from_mapping({"redis": {"url": "redis://127.0.0.1:6379/0",
                                         "tls": {"ca_file": str(certs / "ca.crt")}}})
    assert "tls is set but url is not rediss://" in str(plain.value)
    with pytest.raises(ConfigError) as missing:
        settings_from_mapping({"redis": {"url": "rediss://127.0.0.1:6379/0",
                                         "tls": {"ca_file": str(tmp_path / "nope.crt")}}})
    assert "ca_file: no such file" in str(missing.value)
    with pytest.raises(ConfigError) as half:
        settings_from_mapping({"redis": {"url": "rediss://127.0.0.1:6379/0",
                                         "tls": {"cert_file": str(certs / "client.crt")}}})
    assert "cert_file and key_file go together" in str(half.value)


def test_status_without_the_client_certificate_is_one_line_naming_it(
        tmp_path: Path, certs: Path, secured: tuple[RedisServer, str]) -> None:
    """Either way the refusal arrives (the TLS alert, or a reset), the one line names the
    client certificate; run several times, as the race decides which."""
    _, url = secured
    config = app_file(tmp_path, url, certs, client=False)
    for _ in range(5):
        done = sb("status", "-c", str(config))
        assert done.returncode == 3, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "the server requires a client certificate" in lines[0] or \
            "a server that requires a client certificate resets" in lines[0], lines[0]
