"""A throwaway PostgreSQL server for the inbox tests: ``initdb`` in a temporary folder,
``postgres`` on a free loopback port, removed at the end. Debian's ``postgresql``
package (installed by ``.ci/setup``) provides the binaries. PostgreSQL refuses to run as
root: as root, the server runs as the package's ``postgres`` user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import psycopg

from streamboot.devserver import free_port

START_WITHIN = 30.0


def bindir() -> Path:
    """Debian keeps the server's binaries in /usr/lib/postgresql/<major>/bin (the newest
    wins); elsewhere, initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL's initdb was not found: `bash .ci/setup test` "
                           "installs it (apt-get install postgresql)")
    return Path(initdb).resolve().parent


class PostgresServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="streamboot-pg-"))
        self.port = free_port()
        self.dsn = f"postgresql://streamboot@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._databases = 0

    def _as_owner(self) -> list[str]:
        if os.getuid() != 0:
            return []
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        return ["runuser", "-u", "postgres", "--"]

    def start(self) -> PostgresServer:
        bin_, prefix = bindir(), self._as_owner()
        data = self.folder / "data"
        subprocess.run([*prefix, str(bin_ / "initdb"), "-D", str(data), "-U", "streamboot",
                        "--auth=trust", "-E", "UTF8", "--no-sync"], check=True,
                       capture_output=True, timeout=120)
        self._log = log = open(self.folder / "server.log", "wb")  # noqa: SIM115 - closed by close()
        # No fsync: the tests kill the clients, never this server.
        self.process = subprocess.Popen(
            [*prefix, str(bin_ / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_WITHIN
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    said = (self.folder / "server.log").read_text(errors="replace")[-2000:]
                    self.close()
                    raise RuntimeError(f"PostgreSQL did not start: {said}") from None
                time.sleep(0.1)

    def database(self) -> str:
        """A new, empty database: its DSN."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn.rsplit("/", 1)[0] + f"/{name}"

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: smart shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
