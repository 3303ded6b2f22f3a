"""Reusable browser-test harness: a real Jupyter server, headless Chromium, notebook driving.

This module knows nothing about luzwidget internals.  It provides:

* :func:`prepare_jupyter_env` -- an isolated set of Jupyter directories (config, data, runtime,
  settings, workspaces) with a ``python3`` kernelspec pointing at :data:`sys.executable`.
* :class:`JupyterServer` -- starts ``jupyter lab`` (or ``jupyter notebook``) in its own process
  group, waits for ``/api/status`` and talks to the REST API.  One server serves both UIs:
  JupyterLab under ``/lab`` and Notebook 7 under ``/notebooks``.
* :func:`write_notebook` -- writes an ``.ipynb`` with ``metadata.kernelspec`` set so no
  kernel-chooser dialog appears.
* :class:`NotebookSession` -- one notebook open in one browser page, with helpers to run cells,
  wait for selectors, evaluate expressions in the kernel and take element screenshots.

Design notes (measured pitfalls):

* ``BlockingKernelClient.wait_for_ready()`` can hang while the kernel publishes on iopub more
  often than every 0.2 s, so :class:`NotebookSession` only opens the *shell* channel and uses
  ``kernel_info()`` + ``get_shell_msg(timeout=...)`` matched on the parent ``msg_id``.
* Every notebook is opened in its own JupyterLab workspace; otherwise the ``default`` workspace
  restores previously opened notebooks (and starts their kernels) in later tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import nbformat

if TYPE_CHECKING:
    from jupyter_client.blocking import BlockingKernelClient
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Root of the luzwidget repository (put on the kernel's ``PYTHONPATH``)."""

CHROMIUM_PATH = os.environ.get("LUZWIDGET_CHROMIUM", "/usr/bin/chromium")
"""Chromium executable used by Playwright (no browser downloads are possible here)."""

CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)

KERNEL_NAME = "python3"
"""Name of the kernelspec installed into the isolated data dir (and written into notebooks)."""

UI = Literal["lab", "notebook"]
"""Which frontend opens a notebook: JupyterLab (``/lab``) or Notebook 7 (``/notebooks``)."""

DEFAULT_TIMEOUT = 60.0
"""Default timeout (seconds) for waits on the page and the kernel."""

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HarnessError(RuntimeError):
    """Raised when the harness itself cannot do what was asked (server, page, kernel)."""


class CellExecutionError(AssertionError):
    """Raised when an executed cell produced an ``error`` output (or never got executed)."""


class KernelEvalError(AssertionError):
    """Raised when :meth:`NotebookSession.kernel_eval` evaluates an expression that raises."""


def artifacts_dir() -> Path:
    """Return (and create) the directory for screenshots and other browser-test artifacts.

    ``$LUZWIDGET_ARTIFACTS`` if set, else ``<repo>/artifacts/browser`` (git-ignored).
    """
    path = Path(os.environ.get("LUZWIDGET_ARTIFACTS") or REPO_ROOT / "artifacts" / "browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(text: str, max_len: int = 80) -> str:
    """Turn arbitrary text (e.g. a pytest node name) into a file-name-safe slug."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return (slug or "item")[:max_len]


def strip_ansi(text: str) -> str:
    """Remove ANSI colour escapes (tracebacks from the kernel are coloured)."""
    return _ANSI_RE.sub("", text)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Isolated Jupyter environment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JupyterEnv:
    """Isolated Jupyter directories plus the process environment that points at them."""

    base: Path
    root_dir: Path
    config_dir: Path
    data_dir: Path
    runtime_dir: Path
    settings_dir: Path
    workspaces_dir: Path
    env: dict[str, str] = field(repr=False)


_SERVER_CONFIG = """\
# Written by tests/browser/harness.py -- isolated config for browser tests.
c = get_config()  # noqa: F821
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
c.LabApp.expose_app_in_browser = True
c.JupyterNotebookApp.expose_app_in_browser = True
c.ServerApp.open_browser = False
c.ServerApp.disable_check_xsrf = False
c.LanguageServerManager.autodetect = False
"""


def prepare_jupyter_env(base: Path, repo_root: Path = REPO_ROOT) -> JupyterEnv:
    """Create isolated Jupyter dirs under ``base`` and return them with a matching environment.

    * ``jupyter_server_config.py`` disables news / update checks and exposes
      ``window.jupyterapp`` in both JupyterLab and Notebook 7.
    * ``labconfig/page_config.json`` disables the announcements plugin.
    * A ``python3`` kernelspec pointing at :data:`sys.executable` is installed into the data
      dir (which takes precedence over the venv's own spec).
    * ``PYTHONPATH`` starts with ``repo_root`` so ``import luzwidget`` works in the kernel even
      if the package is not installed yet.
    """
    base.mkdir(parents=True, exist_ok=True)
    dirs = {
        name: base / name
        for name in ("root", "config", "data", "runtime", "settings", "workspaces", "ipython")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    config_dir = dirs["config"]
    (config_dir / "jupyter_server_config.py").write_text(_SERVER_CONFIG)
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(exist_ok=True)
    page_config = {
        "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True},
    }
    (labconfig / "page_config.json").write_text(json.dumps(page_config, indent=2))

    kernel_dir = dirs["data"] / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    kernel_spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(kernel_spec, indent=2))

    env = dict(os.environ)
    pythonpath = [str(repo_root)]
    if env.get("PYTHONPATH"):
        pythonpath.append(env["PYTHONPATH"])
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PYTHONPATH=os.pathsep.join(pythonpath),
        PATH=os.pathsep.join([venv_bin, env.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_TOKEN", None)
    return JupyterEnv(
        base=base,
        root_dir=dirs["root"],
        config_dir=config_dir,
        data_dir=dirs["data"],
        runtime_dir=dirs["runtime"],
        settings_dir=dirs["settings"],
        workspaces_dir=dirs["workspaces"],
        env=env,
    )


# --------------------------------------------------------------------------------------------
# Jupyter server
# --------------------------------------------------------------------------------------------


class JupyterServer:
    """A ``jupyter lab`` / ``jupyter notebook`` process in its own process group.

    Use as a context manager, or call :meth:`start` / :meth:`stop` (``stop`` is idempotent and
    kills the whole process group, kernels included).
    """

    def __init__(
        self,
        env: JupyterEnv,
        app: Literal["lab", "notebook"] = "lab",
        startup_timeout: float = 90.0,
    ) -> None:
        """Prepare (but do not start) a server using the isolated ``env``."""
        if app not in ("lab", "notebook"):
            raise ValueError(f"app must be 'lab' or 'notebook', not {app!r}")
        self.env = env
        self.app = app
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = env.base / f"jupyter-{app}.log"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def root_dir(self) -> Path:
        """Directory served as the Jupyter root; notebooks are written here."""
        return self.env.root_dir

    @property
    def runtime_dir(self) -> Path:
        """``JUPYTER_RUNTIME_DIR`` of the server (holds ``kernel-<id>.json`` connection files)."""
        return self.env.runtime_dir

    def start(self) -> JupyterServer:
        """Start the server and wait until ``/api/status`` answers; retry on a port race."""
        last_error: Exception | None = None
        for _attempt in range(3):
            self.port = free_port()
            try:
                self._spawn()
                self._wait_ready()
                return self
            except HarnessError as exc:
                last_error = exc
                self.stop()
        raise HarnessError(f"Jupyter {self.app} server did not start: {last_error}")

    def _spawn(self) -> None:
        jupyter = shutil.which("jupyter", path=self.env.env["PATH"]) or "jupyter"
        cmd = [
            jupyter,
            self.app,
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.env.root_dir}",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.env.root_dir,
                env=self.env.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"server exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "/api/status", timeout=2.0)
                return
            except (OSError, HarnessError):
                time.sleep(0.2)
        raise HarnessError(f"server not ready after {self.startup_timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Kill the server's process group (SIGTERM, then SIGKILL); safe to call repeatedly."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            pgid = os.getpgid(proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if pgid is not None:
            # Kernels live in the same process group; make sure nothing survives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n_chars: int = 4000) -> str:
        """Last ``n_chars`` of the server log (for failure reports)."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "<no server log>"

    # -- REST --------------------------------------------------------------------------------

    def url(self, path: str, **query: str) -> str:
        """Absolute URL for ``path`` with the token (and ``query``) appended."""
        params = {**query, "token": self.token}
        return f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"

    def api(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> Any:
        """Call the server REST API; return decoded JSON (``None`` for empty bodies)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise HarnessError(f"{method} {path} -> HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        return json.loads(payload) if payload else None

    def sessions(self) -> list[dict[str, Any]]:
        """``GET /api/sessions``."""
        return list(self.api("GET", "/api/sessions"))

    def session_for(self, path: str) -> dict[str, Any] | None:
        """The server session whose ``path`` is ``path`` (relative to the root), if any."""
        for session in self.sessions():
            if session.get("path") == path:
                return session
        return None

    def shutdown_session(self, session_id: str) -> None:
        """``DELETE /api/sessions/<id>`` (also shuts the kernel down); ignore missing ones."""
        with contextlib.suppress(HarnessError):
            self.api("DELETE", f"/api/sessions/{session_id}", timeout=30.0)

    def notebook_url(self, path: str, ui: UI = "lab", workspace: str | None = None) -> str:
        """URL that opens ``path`` in JupyterLab (own ``workspace``) or in Notebook 7."""
        quoted = urllib.parse.quote(path)
        if ui == "lab":
            workspace = workspace or f"t{uuid.uuid4().hex[:12]}"
            return self.url(f"/lab/workspaces/{workspace}/tree/{quoted}")
        if ui == "notebook":
            return self.url(f"/notebooks/{quoted}")
        raise ValueError(f"ui must be 'lab' or 'notebook', not {ui!r}")


# --------------------------------------------------------------------------------------------
# Notebooks
# --------------------------------------------------------------------------------------------


def write_notebook(path: Path, cells: Sequence[str], kernel_name: str = KERNEL_NAME) -> Path:
    """Write a notebook of code ``cells`` (strings starting with ``%%md`` become markdown)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for source in cells:
        if source.startswith("%%md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source.removeprefix("%%md\n")))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# JavaScript helpers installed into every page (before the app's own scripts run).
_PAGE_HELPERS = r"""
(() => {
  if (window.__luzHarness) { return; }
  const H = {
    seq: 0,
    runs: {},
    panel(path) {
      const app = window.jupyterapp;
      if (!app || !app.shell || typeof app.shell.widgets !== 'function') { return null; }
      try {
        for (const w of app.shell.widgets('main')) {
          if (w && w.context && w.context.path === path && w.content && w.sessionContext) {
            return w;
          }
        }
      } catch (e) { return null; }
      return null;
    },
    state(path) {
      const p = H.panel(path);
      if (!p) { return { panel: false, app: !!window.jupyterapp }; }
      const sc = p.sessionContext;
      const kernel = sc.session ? sc.session.kernel : null;
      const pending = Object.values(H.runs).filter((r) => r.path === path && !r.done).length;
      return {
        panel: true,
        contextReady: !!p.context.isReady,
        sessionReady: !!sc.isReady,
        kernel: kernel ? kernel.status : null,
        connection: kernel ? kernel.connectionStatus : null,
        pending: pending,
      };
    },
    isIdle(path) {
      const s = H.state(path);
      return s.panel && s.contextReady && s.sessionReady && s.kernel === 'idle' &&
        s.connection === 'connected' && s.pending === 0;
    },
    run(path, command, index) {
      const app = window.jupyterapp;
      const p = H.panel(path);
      if (!p) { throw new Error('notebook panel not found: ' + path); }
      app.shell.activateById(p.id);
      const nb = p.content;
      if (index !== null && index !== undefined) {
        if (index < 0 || index >= nb.widgets.length) {
          throw new Error('cell index out of range: ' + index);
        }
        nb.activeCellIndex = index;
        nb.deselectAll();
      }
      const id = ++H.seq;
      const record = { id: id, path: path, command: command, done: false, error: null };
      H.runs[id] = record;
      Promise.resolve(app.commands.execute(command, {})).then(
        (result) => { record.done = true; record.result = result; },
        (err) => { record.done = true; record.error = String(err && err.stack || err); },
      );
      return id;
    },
    runDone(id) { const r = H.runs[id]; return !!r && r.done; },
    runError(id) { const r = H.runs[id]; return r ? r.error : 'unknown run ' + id; },
    cells(path) {
      const p = H.panel(path);
      if (!p) { return null; }
      return p.content.widgets.map((cell) => {
        const m = cell.model;
        const out = { type: m.type, source: m.sharedModel.getSource() };
        if (m.type === 'code') {
          out.executionCount = m.executionCount;
          out.outputs = m.outputs.toJSON();
        }
        return out;
      });
    },
  };
  window.__luzHarness = H;
})();
"""


@dataclass(frozen=True)
class ConsoleEntry:
    """One browser console message (or page error, ``type == "pageerror"``)."""

    type: str
    text: str
    location: str = ""

    def __str__(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"[{self.type}] {self.text}{where}"


class NotebookSession:
    """One notebook opened in its own browser context/page, plus a kernel client.

    Attributes:
        page: the Playwright :class:`~playwright.sync_api.Page`.
        path: notebook path relative to the server root (``"name.ipynb"``).
        ui: ``"lab"`` or ``"notebook"``.
        console: console messages collected so far (``page.on("console")``).
        page_errors: uncaught page errors collected so far (``page.on("pageerror")``).
    """

    def __init__(
        self,
        server: JupyterServer,
        browser: Browser,
        path: str,
        ui: UI = "lab",
        viewport: tuple[int, int] = (1400, 1000),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Create a browser context + page for ``path`` (call :meth:`open` to load it)."""
        self.server = server
        self.path = path
        self.ui: UI = ui
        self.timeout = timeout
        self.console: list[ConsoleEntry] = []
        self.page_errors: list[ConsoleEntry] = []
        self._kernel_client: BlockingKernelClient | None = None
        self._kernel_id: str | None = None
        self._closed = False
        self.context: BrowserContext = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        self.context.set_default_timeout(timeout * 1000)
        self.context.add_init_script(_PAGE_HELPERS)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_pageerror)

    # -- console -------------------------------------------------------------------------------

    def _on_console(self, msg: ConsoleMessage) -> None:
        loc = msg.location or {}
        where = f"{loc.get('url', '')}:{loc.get('lineNumber', '')}" if loc.get("url") else ""
        self.console.append(ConsoleEntry(msg.type, msg.text, where))

    def _on_pageerror(self, error: Exception) -> None:
        entry = ConsoleEntry("pageerror", str(error))
        self.page_errors.append(entry)
        self.console.append(entry)

    def console_errors(self) -> list[ConsoleEntry]:
        """Console messages of type ``error`` plus page errors."""
        return [e for e in self.console if e.type in ("error", "pageerror")]

    def console_text(self) -> str:
        """All collected console messages, one per line (for debugging / failure reports)."""
        return "\n".join(str(e) for e in self.console) or "<no console messages>"

    # -- opening -------------------------------------------------------------------------------

    def open(self) -> NotebookSession:
        """Navigate to the notebook and wait until its kernel is connected and idle."""
        self.page.goto(self.server.notebook_url(self.path, self.ui), wait_until="load")
        self.wait_idle()
        return self

    def _state(self) -> dict[str, Any]:
        try:
            return dict(self.page.evaluate("(p) => window.__luzHarness.state(p)", self.path))
        except Exception as exc:  # page navigating / closed
            return {"error": str(exc)}

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until the notebook is loaded, nothing we started is running, kernel is idle."""
        timeout = self.timeout if timeout is None else timeout
        try:
            self.page.wait_for_function(
                "(p) => window.__luzHarness && window.__luzHarness.isIdle(p)",
                arg=self.path,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as exc:
            raise HarnessError(
                f"notebook {self.path!r} not idle after {timeout}s; state={self._state()}\n"
                f"console errors:\n" + "\n".join(str(e) for e in self.console_errors())
            ) from exc

    # -- running cells -------------------------------------------------------------------------

    def cells(self) -> list[dict[str, Any]]:
        """Model of every cell: ``type``, ``source`` and for code ``executionCount``/``outputs``."""
        cells = self.page.evaluate("(p) => window.__luzHarness.cells(p)", self.path)
        if cells is None:
            raise HarnessError(f"notebook panel {self.path!r} not found in the page")
        return list(cells)

    def cell_outputs(self, index: int) -> list[dict[str, Any]]:
        """nbformat-style outputs of cell ``index`` (from the frontend model)."""
        return list(self.cells()[index].get("outputs", []))

    def _start(self, command: str, index: int | None) -> int:
        return int(
            self.page.evaluate(
                "([p, c, i]) => window.__luzHarness.run(p, c, i)", [self.path, command, index]
            )
        )

    def _finish(self, run_id: int, indices: Sequence[int] | None, timeout: float, check: bool):
        try:
            self.page.wait_for_function(
                "(id) => window.__luzHarness.runDone(id)",
                arg=run_id,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as exc:
            raise HarnessError(
                f"cell execution not finished after {timeout}s; state={self._state()}"
            ) from exc
        error = self.page.evaluate("(id) => window.__luzHarness.runError(id)", run_id)
        if error:
            raise HarnessError(f"run command failed in the page: {error}")
        self.wait_idle(timeout)
        if check:
            self.check_cells(indices)

    def check_cells(self, indices: Sequence[int] | None = None) -> None:
        """Raise :class:`CellExecutionError` if a code cell errored or was not executed.

        ``indices=None`` checks every non-empty code cell.
        """
        cells = self.cells()
        chosen = range(len(cells)) if indices is None else indices
        problems: list[str] = []
        for i in chosen:
            cell = cells[i]
            if cell["type"] != "code" or not cell["source"].strip():
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    tb = strip_ansi("\n".join(out.get("traceback", [])))
                    problems.append(f"cell {i} raised {out.get('ename')}: {out.get('evalue')}\n{tb}")
            if cell.get("executionCount") is None and not problems:
                problems.append(f"cell {i} has no execution count (not executed)")
        if problems:
            raise CellExecutionError("\n\n".join(problems))

    def run_all(
        self, timeout: float | None = None, *, wait: bool = True, check: bool = True
    ) -> None:
        """Run all cells (``notebook:run-all-cells``).

        Args:
            timeout: seconds to wait for completion (default: session timeout).
            wait: if False, return right after starting (use :meth:`wait_idle` later).
            check: raise :class:`CellExecutionError` on error outputs / unexecuted cells.
        """
        run_id = self._start("notebook:run-all-cells", None)
        if wait:
            self._finish(run_id, None, self.timeout if timeout is None else timeout, check)

    def run_cell(
        self, index: int, timeout: float | None = None, *, wait: bool = True, check: bool = True
    ) -> None:
        """Run cell ``index`` without advancing (``notebook:run-cell``); see :meth:`run_all`."""
        run_id = self._start("notebook:run-cell", index)
        if wait:
            self._finish(run_id, [index], self.timeout if timeout is None else timeout, check)

    # -- DOM -----------------------------------------------------------------------------------

    def cell(self, index: int) -> Locator:
        """Locator of the ``index``-th cell (``.jp-Cell``) of the notebook."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def wait_for(
        self,
        selector: str,
        timeout: float | None = None,
        state: Literal["attached", "detached", "visible", "hidden"] = "visible",
    ) -> Locator:
        """Wait for the first element matching ``selector`` to reach ``state``; return it."""
        locator = self.page.locator(selector).first
        timeout = self.timeout if timeout is None else timeout
        locator.wait_for(state=state, timeout=timeout * 1000)
        return locator

    def screenshot(self, selector: str | Locator = ".jp-Notebook", name: str = "shot") -> Path:
        """Screenshot of one element (selector or locator) into :func:`artifacts_dir`."""
        locator = self.page.locator(selector).first if isinstance(selector, str) else selector
        path = artifacts_dir() / f"{safe_name(name)}.png"
        locator.screenshot(path=str(path), animations="disabled")
        return path

    # -- kernel --------------------------------------------------------------------------------

    @property
    def kernel_id(self) -> str:
        """Id of the kernel of this notebook's server session (looked up via ``/api/sessions``)."""
        if self._kernel_id is None:
            deadline = time.monotonic() + self.timeout
            while True:
                session = self.server.session_for(self.path)
                if session and session.get("kernel"):
                    self._kernel_id = str(session["kernel"]["id"])
                    break
                if time.monotonic() > deadline:
                    raise HarnessError(f"no server session for {self.path!r}")
                time.sleep(0.2)
        return self._kernel_id

    def kernel_client(self, timeout: float = 30.0) -> BlockingKernelClient:
        """A shell-only ``BlockingKernelClient`` connected to this notebook's kernel (cached)."""
        if self._kernel_client is None:
            from jupyter_client.blocking import BlockingKernelClient

            conn = self.server.runtime_dir / f"kernel-{self.kernel_id}.json"
            client = BlockingKernelClient()
            client.load_connection_file(str(conn))
            client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
            # Not wait_for_ready(): it can hang while the kernel publishes on iopub frequently.
            msg_id = client.kernel_info()
            self._shell_reply(client, msg_id, timeout)
            self._kernel_client = client
        return self._kernel_client

    @staticmethod
    def _shell_reply(client: BlockingKernelClient, msg_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"no shell reply from the kernel within {timeout}s")
            try:
                msg = client.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return dict(msg)

    def kernel_eval(self, expr: str, timeout: float = 30.0) -> str:
        """Evaluate ``expr`` in the notebook's kernel; return its ``repr`` (``text/plain``).

        Uses ``user_expressions`` with ``store_history=False``, so it does not touch ``In``/
        ``Out`` or the execution count.  The shell channel is serial: if a cell is still
        running, this waits for it (up to ``timeout``).
        """
        client = self.kernel_client()
        msg_id = client.execute(
            "", silent=False, store_history=False, user_expressions={"v": expr}
        )
        reply = self._shell_reply(client, msg_id, timeout)["content"]
        if reply.get("status") != "ok":
            raise KernelEvalError(f"execute_request failed: {reply.get('ename')}: {reply}")
        value = reply["user_expressions"]["v"]
        if value.get("status") != "ok":
            tb = strip_ansi("\n".join(value.get("traceback", [])))
            raise KernelEvalError(
                f"{expr!r} raised {value.get('ename')}: {value.get('evalue')}\n{tb}"
            )
        return str(value["data"]["text/plain"])

    def kernel_json(self, expr: str, timeout: float = 30.0) -> Any:
        """Evaluate ``expr`` in the kernel and return it decoded via a JSON round-trip."""
        text = self.kernel_eval(f"__import__('json').dumps({expr})", timeout=timeout)
        return json.loads(_unrepr_str(text))

    def kernel_exec(self, code: str, timeout: float = 30.0) -> None:
        """Execute ``code`` in the kernel (no history); raise :class:`KernelEvalError` on error.

        Note: output produced by ``code`` is broadcast on iopub and may show up in the page.
        """
        client = self.kernel_client()
        msg_id = client.execute(code, silent=False, store_history=False)
        reply = self._shell_reply(client, msg_id, timeout)["content"]
        if reply.get("status") != "ok":
            tb = strip_ansi("\n".join(reply.get("traceback", [])))
            raise KernelEvalError(f"{reply.get('ename')}: {reply.get('evalue')}\n{tb}")

    def wait_kernel(
        self,
        expr: str,
        expected: str | Callable[[str], bool],
        timeout: float = 30.0,
        interval: float = 0.1,
    ) -> str:
        """Poll :meth:`kernel_eval` until it equals ``expected`` (or the predicate is true).

        Widget events reach the kernel asynchronously (comm messages), so assert kernel state
        after a click with this instead of a single :meth:`kernel_eval`.
        """
        ok = expected if callable(expected) else (lambda value: value == expected)
        deadline = time.monotonic() + timeout
        value = "<never evaluated>"
        while True:
            value = self.kernel_eval(expr, timeout=max(1.0, deadline - time.monotonic()))
            if ok(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"kernel expression {expr!r} is {value!r}, expected {expected!r} "
                    f"(after {timeout}s)"
                )
            time.sleep(interval)

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the page, the kernel client and shut down the server session (kernel)."""
        if self._closed:
            return
        self._closed = True
        if self._kernel_client is not None:
            with contextlib.suppress(Exception):
                self._kernel_client.stop_channels()
            self._kernel_client = None
        with contextlib.suppress(Exception):
            self.context.close()
        with contextlib.suppress(Exception):
            session = self.server.session_for(self.path)
            if session:
                self.server.shutdown_session(str(session["id"]))


def _unrepr_str(text: str) -> str:
    """Decode the ``repr`` of a ``str`` as produced by the kernel's ``text/plain``."""
    import ast

    value = ast.literal_eval(text)
    if not isinstance(value, str):
        raise HarnessError(f"expected a str repr, got {text!r}")
    return value


@contextlib.contextmanager
def launch_browser(executable_path: str = CHROMIUM_PATH) -> Iterator[Browser]:
    """Start Playwright and headless Chromium (Debian's ``/usr/bin/chromium``); close at exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable_path,
            headless=True,
            args=list(CHROMIUM_ARGS),
        )
        try:
            yield browser
        finally:
            with contextlib.suppress(Exception):
                browser.close()
