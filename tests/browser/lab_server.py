"""An isolated Jupyter server (JupyterLab 4 under ``/lab``, Notebook 7 under ``/notebooks``).

Every Jupyter directory (config, data, runtime, settings, workspaces, IPython) lives in a temp
dir, so nothing of the developer's own setup leaks in; news, update checks and announcements
are off; ``window.jupyterapp`` is exposed for the page helpers.  The server runs in its own
process group and :meth:`JupyterServer.stop` always kills that group.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "python3"
UI = Literal["lab", "notebook"]

_SERVER_CONFIG = """\
c = get_config()  # noqa: F821
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
c.LabApp.expose_app_in_browser = True
c.JupyterNotebookApp.expose_app_in_browser = True
c.LanguageServerManager.autodetect = False
"""


class ServerError(RuntimeError):
    """The Jupyter server did not start, or a REST call failed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if the test process dies without running its teardown."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 == PR_SET_PDEATHSIG


def isolated_env(base: Path) -> dict[str, str]:
    """Create config/data/... dirs under ``base``; return the environment that uses them.

    Also installs a ``python3`` kernelspec for :data:`sys.executable` (the data dir wins over
    the venv's spec) and puts the repository first on the kernel's ``PYTHONPATH``.
    """
    dirs = {
        name: base / name
        for name in ("root", "config", "data", "runtime", "settings", "workspaces", "ipython")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    (dirs["config"] / "jupyter_server_config.py").write_text(_SERVER_CONFIG)
    (dirs["config"] / "labconfig").mkdir(exist_ok=True)
    page_config = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(page_config))
    # Every cell in the DOM (no windowing), so locators and screenshots see offscreen cells.
    tracker = dirs["settings"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    spec_dir = dirs["data"] / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))

    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_TOKEN")}
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


class JupyterServer:
    """``jupyter lab`` on 127.0.0.1 with a random token; a context manager."""

    def __init__(self, base: Path, startup_timeout: float = 120.0) -> None:
        """Prepare an isolated server under ``base`` (see :func:`isolated_env`)."""
        self.base = base
        self.env = isolated_env(base)
        self.root_dir = base / "root"
        self.runtime_dir = base / "runtime"
        self.log_path = base / "jupyter-server.log"
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> JupyterServer:
        """Start the server and wait for ``/api/status``; retry twice on a port race."""
        for attempt in range(3):
            self.port = _free_port()
            self._spawn()
            try:
                self._wait_ready()
                return self
            except ServerError:
                self.stop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, killed as a whole in stop()
                preexec_fn=_die_with_parent,
            )

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError, ServerError):
                self.api("GET", "/api/status", timeout=5.0)
                return
            time.sleep(0.25)
        raise ServerError(f"server not ready after {self.startup_timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut kernels and server down (REST, then SIGTERM, then SIGKILL); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError, ServerError):
                self.api("POST", "/api/shutdown", timeout=10.0)  # also shuts kernels down
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # pgid == pid: start_new_session
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n_chars: int = 4000) -> str:
        """End of the server log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no server log>"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call the REST API with the token; decoded JSON, or None for an empty body."""
        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{method} {path} -> HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        return json.loads(payload) if payload else None

    def session_for(self, path: str) -> dict[str, Any] | None:
        """The server session (with its ``kernel``) of notebook ``path``, if any."""
        return next((s for s in self.api("GET", "/api/sessions") if s["path"] == path), None)

    def notebook_url(self, path: str, ui: UI = "lab") -> str:
        """URL opening ``path`` in JupyterLab (a fresh workspace) or Notebook 7, with token."""
        quoted = urllib.parse.quote(path)
        if ui == "lab":  # own workspace: the default one would reopen earlier notebooks
            route = f"/lab/workspaces/t{uuid.uuid4().hex[:12]}/tree/{quoted}"
        elif ui == "notebook":
            route = f"/notebooks/{quoted}"
        else:
            raise ValueError(f"ui must be 'lab' or 'notebook', not {ui!r}")
        return f"{self.base_url}{route}?token={self.token}"

    def write_notebook(self, name: str, cells: Sequence[str]) -> str:
        """Write code ``cells`` as ``<root>/<name>`` (kernelspec set: no kernel dialog)."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": KERNEL_NAME,
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return name
