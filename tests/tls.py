"""Certificates for the TLS tests, made with openssl in a temporary directory: a CA, a
server certificate for 127.0.0.1/localhost, and a client certificate, all signed by it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from streamboot.devserver import RedisServer, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(where: Path) -> Path:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=streamboot-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=where)
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", cwd=where)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt",
                 cwd=where)
    return where


def tls_server(certs: Path) -> tuple[RedisServer, int]:
    """A server with a TLS port that requires client certificates (and a plain port, which
    only the readiness check uses); returns it with its TLS port."""
    server = RedisServer()
    tls_port = free_port()
    server.extra_args = ["--tls-port", str(tls_port), "--tls-cert-file", str(certs / "server.crt"),
                         "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file",
                         str(certs / "ca.crt"), "--tls-auth-clients", "yes"]
    return server, tls_port
