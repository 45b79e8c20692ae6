"""Stopping a server process the way an orchestrator does."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, wait up to `timeout` for the graceful shutdown, else SIGKILL; the exit code
    (uvicorn re-raises the signal after a graceful shutdown, so a clean stop is -SIGTERM)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode
