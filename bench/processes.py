"""What the benchmark scripts share about the processes they start."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it has not ended within ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
