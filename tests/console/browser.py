"""Debian's chromium, headless, driven by Playwright (never Playwright's own browser
download, which cannot work here), and the console as its users start it: the
``streamboot console`` command in a process of its own."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console"
"""Where each page's screenshot is kept for people to look at (docs/operations.md)."""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
START_WITHIN = 30.0


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium was not found: `bash .ci/setup test` installs it "
                           "(apt-get install chromium)")
    return found


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(),
                                                    args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.contextmanager
def console_process(config: Path, *args: str) -> Iterator[str]:
    """``streamboot console CONFIG ARGS`` on a free port; yields its base URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamboot", "console", str(config),
                             "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        deadline, said = time.monotonic() + START_WITHIN, []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            said.append(line)
            found = re.search(r"on (http://\S+/)", line)
            if found:
                yield found.group(1).rstrip("/")
                return
        raise RuntimeError(f"the console did not start: {''.join(said)}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
