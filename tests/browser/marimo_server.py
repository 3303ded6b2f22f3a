"""A ``marimo run`` server for one app file, on a free port, in its own process group.

Like :mod:`lab_server` for Jupyter: no token, headless, the repository first on the
kernel's ``PYTHONPATH``; :meth:`MarimoServer.stop` kills the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lab_server import REPO_ROOT, ServerError, _die_with_parent, _free_port


class MarimoServer:
    """``marimo run <app>`` on 127.0.0.1; a context manager. Every page load is a new session."""

    def __init__(self, app: Path, base: Path, startup_timeout: float = 120.0) -> None:
        self.app, self.base, self.startup_timeout = app, base, startup_timeout
        self.log_path = base / "marimo-server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> MarimoServer:
        """Start the server and wait until it answers."""
        self.port = _free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["MARIMO_SKIP_UPDATE_CHECK"] = "1"
        cmd = [
            sys.executable, "-m", "marimo", "run", str(self.app), "--headless", "--no-token",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.base, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"marimo exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url, timeout=5).read()
                return self
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"marimo not ready after {self.startup_timeout}s:\n{self.log_tail()}")

    def eval(self, expr: str) -> float:
        """Kernel values are not reachable from outside a marimo session: NaN."""
        del expr
        return float("nan")

    def log_tail(self, n_chars: int = 4000) -> str:
        """End of the server log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no server log>"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, the server's process group; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
                return

    def __enter__(self) -> MarimoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
