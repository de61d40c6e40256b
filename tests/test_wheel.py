"""The package as users get it: the built wheel, installed into a fresh virtualenv, used
from a directory of the user's own — `import streamboot`, typed under `mypy --strict`,
and a handler run by its `streamboot` command against a real redis-server.

The fresh venv borrows the dependencies from the project's venv (a path entry, which does
not process that venv's .pth files, so the editable install stays invisible): only the
wheel provides `streamboot`.
"""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import redis

from tests.conftest import stop_process, wait_for

ROOT = Path(__file__).resolve().parents[1]

HANDLER = '''
from pathlib import Path

from pydantic import BaseModel

from streamboot import Message, StreamHandler


class Order(BaseModel):
    order_id: str
    qty: int


class Record(StreamHandler[Order]):
    async def handle(self, message: Message[Order]) -> None:
        total: int = message.payload.qty * 2  # typed: mypy knows payload is an Order
        Path("handled.txt").write_text(f"{message.payload.order_id} {total}")
'''

MISTYPED = '''
from pydantic import BaseModel

from streamboot import Message, StreamHandler


class Order(BaseModel):
    order_id: str


class Wrong(StreamHandler[Order]):
    async def handle(self, message: Message[Order]) -> None:
        message.payload.qty  # not a field of Order
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel `python -m build` makes from this checkout (from the
    sdist it makes first, so the sdist is complete too); returns its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(work), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = work.glob("streamboot-*.tar.gz")
    (wheel,) = work.glob("streamboot-*.whl")
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
    assert {"framework/testing.py", "framework/py.typed", "pyproject.toml",
            "README.md"} <= members
    names = zipfile.ZipFile(wheel).namelist()
    assert "streamboot/py.typed" in names
    # The console's pages and style sheet travel with it (package data, not modules).
    assert {"streamboot/console/templates/overview.html",
            "streamboot/console/static/console.css"} <= set(names)
    assert {n.split("/")[0] for n in names if not n.startswith("streamboot-")} == {"streamboot"}
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    purelib = next(Path(venv).glob("lib/python*/site-packages"))
    (purelib / "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "STREAMBOOT_CONFIG", "REDIS_URL")}


def test_the_wheel_installs_streamboot_only(installed: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        [str(installed / "python"), "-c",
         "import importlib.util as u, streamboot; "
         "print(streamboot.__file__); "
         "print(u.find_spec('framework'), u.find_spec('sample_app'))"],
        cwd=tmp_path, capture_output=True, text=True, env=_clean_env(), timeout=60)
    assert probe.returncode == 0, probe.stderr
    where, missing = probe.stdout.splitlines()
    assert "site-packages/streamboot/" in where  # the wheel's copy, not the checkout
    assert missing == "None None"


def test_a_users_handler_is_typed_under_mypy_strict(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(HANDLER)
    (tmp_path / "wrong.py").write_text(MISTYPED)
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
            "--python-executable", str(installed / "python")]
    good = subprocess.run([*mypy, "good.py"], cwd=tmp_path, capture_output=True, text=True,
                          env=_clean_env(), timeout=300)
    assert good.returncode == 0, good.stdout
    wrong = subprocess.run([*mypy, "wrong.py"], cwd=tmp_path, capture_output=True, text=True,
                           env=_clean_env(), timeout=300)
    assert wrong.returncode == 1
    assert '"Order" has no attribute "qty"' in wrong.stdout, wrong.stdout


def test_the_installed_command_runs_a_users_handler(
        installed: Path, tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "orders.py").write_text(HANDLER)
    (tmp_path / "application.yaml").write_text(f"""
redis: {{url: "{redis_url}"}}
listeners:
  orders: {{stream: wheel-orders, group: g, handler: "orders:Record", poll_timeout: 100ms}}
""")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.delete("wheel-orders")
    proc = subprocess.Popen([str(installed / "streamboot"), "run", "application.yaml"],
                            cwd=tmp_path, env=_clean_env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: client.exists("wheel-orders"), timeout=30)
        client.xadd("wheel-orders", {"order_id": "o-1", "qty": "21"})
        wait_for(lambda: (tmp_path / "handled.txt").exists(), timeout=30)
    finally:
        stderr = stop_process(proc, signal.SIGTERM)
        client.delete("wheel-orders")
        client.close()
    assert proc.returncode == 0, stderr
    assert (tmp_path / "handled.txt").read_text() == "o-1 42"
    assert "streamboot.application" in stderr  # the log names the package users import


def test_streamboot_new_makes_a_project_that_passes_its_own_test(
        installed: Path, tmp_path: Path) -> None:
    """The starter, from the installed wheel: its test uses the kit (the wheel's pytest11
    entry point provides the fixtures) against a real throwaway server."""
    made = subprocess.run([str(installed / "streamboot"), "new", "my-shop"], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("created my-shop: app.yaml, my_shop/handlers.py, "
                                  "tests/test_handlers.py")
    project = tmp_path / "my-shop"
    tests = subprocess.run([str(installed / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                            "-W", "error"], cwd=project, env=_clean_env(), capture_output=True,
                           text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    assert "streamboot test server: " in tests.stdout
    checked = subprocess.run([str(installed / "streamboot"), "check", "app.yaml"], cwd=project,
                             env={**_clean_env(), "REDIS_URL": "redis://127.0.0.1:1/0"},
                             capture_output=True, text=True, timeout=60)
    assert "my_shop.handlers" not in checked.stderr  # the handler imports from the root
    again = subprocess.run([str(installed / "streamboot"), "new", "my-shop"], cwd=tmp_path,
                           env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr.strip() == ("streamboot: my-shop exists and is not an empty directory: "
                                    "nothing written")
