"""Browser-test harness: one notebook open in headless Chromium, driven like a user would.

* :func:`launch_browser` starts Playwright with Debian's Chromium (never a downloaded one).
* :class:`NotebookPage` opens a notebook of a :class:`lab_server.JupyterServer` in JupyterLab
  (``ui="lab"``) or Notebook 7 (``ui="notebook"``), runs cells through the app's own commands,
  waits on the page (never fixed sleeps), takes element screenshots into :func:`artifacts_dir`,
  and reads kernel-side values through a shell-only client on the kernel's connection file.

This module knows nothing about luzwidget.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_server import UI, JupyterServer

if (_KERNEL_TESTS := str(Path(__file__).resolve().parents[1] / "kernel")) not in sys.path:
    sys.path.insert(0, _KERNEL_TESTS)
from kernel_shell import ShellClient  # tests/kernel is not a package

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_PATH = os.environ.get("LUZWIDGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DEFAULT_TIMEOUT = 60.0  # seconds; generous for a 2-core CI machine

KNOWN_NOISE = (
    # Notebook 7.6 on JupyterLab 4.6, whatever the config: a settings schema fails to load.
    "Cannot read properties of undefined (reading 'schema')",
    "Command 'filebrowser:open-path' not registered",  # Notebook 7's notebook page
)
"""Errors upstream frontends raise on their own; :meth:`NotebookPage.errors` skips them."""


class HarnessError(RuntimeError):
    """The page did not reach the state the harness waited for."""


class CellError(AssertionError):
    """A cell raised, or was not executed."""


def missing_requirement() -> str | None:
    """Why browser tests cannot run here (Chromium or Playwright missing), or None."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        return f"Chromium not found at {CHROMIUM_PATH} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


def artifacts_dir() -> Path:
    """``$LUZWIDGET_ARTIFACTS`` or ``<repo>/artifacts/browser`` (git-ignored), created."""
    path = Path(os.environ.get("LUZWIDGET_ARTIFACTS") or REPO_ROOT / "artifacts" / "browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:100] or "shot"


@contextlib.contextmanager
def launch_browser() -> Iterator[Browser]:
    """Playwright + headless Chromium at :data:`CHROMIUM_PATH`, closed at exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def expect(target: Any, message: str | None = None) -> Any:
    """Playwright's ``expect`` (auto-retrying assertions), imported only when used."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target, message)


# Installed in every page before the app's scripts.  Uses window.jupyterapp (exposed by the
# server config) and the notebook panel's own models, so it works in Lab 4 and Notebook 7.
_PAGE_HELPERS = r"""
(() => {
  const H = {
    seq: 0,
    runs: {},
    panel(path) {
      const app = window.jupyterapp;
      if (!app || !app.shell || typeof app.shell.widgets !== 'function') { return null; }
      for (const w of app.shell.widgets('main')) {
        if (w && w.context && w.context.path === path && w.sessionContext) { return w; }
      }
      return null;
    },
    state(path) {
      const p = H.panel(path);
      if (!p) { return { panel: false, app: !!window.jupyterapp }; }
      const kernel = p.sessionContext.session ? p.sessionContext.session.kernel : null;
      return {
        panel: true,
        ready: !!p.context.isReady && !!p.sessionContext.isReady,
        kernel: kernel ? kernel.status : null,
        connection: kernel ? kernel.connectionStatus : null,
        running: Object.values(H.runs).filter((r) => !r.done).length,
      };
    },
    isIdle(path) {
      const s = H.state(path);
      return s.panel && s.ready && s.kernel === 'idle' && s.connection === 'connected' &&
        s.running === 0;
    },
    run(path, command, index) {
      const app = window.jupyterapp;
      const p = H.panel(path);
      if (!p) { throw new Error('notebook panel not found: ' + path); }
      app.shell.activateById(p.id);
      if (index !== null) {
        p.content.activeCellIndex = index;
        p.content.deselectAll();
      }
      const run = { done: false, error: null };
      H.runs[++H.seq] = run;
      Promise.resolve(app.commands.execute(command, {})).then(
        () => { run.done = true; },
        (err) => { run.done = true; run.error = String((err && err.stack) || err); },
      );
      return H.seq;
    },
    result(id) { return H.runs[id]; },
    cells(path) {
      const p = H.panel(path);
      return p ? p.content.widgets.map((cell) => ({
        type: cell.model.type,
        source: cell.model.sharedModel.getSource(),
        executionCount: cell.model.type === 'code' ? cell.model.executionCount : null,
        outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : [],
      })) : null;
    },
  };
  window.__harness = H;
})();
"""


class NotebookPage:
    """Notebook ``path`` of ``server`` in its own browser context; :meth:`close` when done.

    Attributes: ``page`` (Playwright page), ``console`` (``"[type] text"`` lines) and
    ``page_errors`` (uncaught exceptions in the page).
    """

    def __init__(
        self,
        server: JupyterServer,
        browser: Browser,
        path: str,
        ui: UI = "lab",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Create the browser context and page; :meth:`open` loads the notebook."""
        self.server, self.path, self.ui, self.timeout = server, path, ui, timeout
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self._shell: ShellClient | None = None
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(timeout * 1000)
        self.context.add_init_script(_PAGE_HELPERS)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def open(self) -> NotebookPage:
        """Load the notebook and wait until its kernel is connected and idle."""
        self.page.goto(self.server.notebook_url(self.path, self.ui))
        self.wait_idle()
        return self

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until the notebook is ready, no command of ours runs, and the kernel is idle."""
        timeout = self.timeout if timeout is None else timeout
        try:
            self.page.wait_for_function(
                "(p) => window.__harness && window.__harness.isIdle(p)",
                arg=self.path,
                timeout=timeout * 1000,
                polling=100,
            )
        except Exception as exc:
            state = self.page.evaluate(
                "(p) => window.__harness && window.__harness.state(p)", self.path
            )
            raise HarnessError(
                f"{self.path} ({self.ui}) not idle after {timeout}s: {state}\n"
                f"page errors: {self.page_errors}"
            ) from exc

    # -- cells ------------------------------------------------------------------------------

    def command(
        self,
        name: str,
        index: int | None = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> None:
        """Execute app command ``name`` (cell ``index`` made active first) and wait for it.

        ``wait=False`` returns at once (e.g. to interrupt a long cell); :meth:`wait_idle` also
        waits for commands started this way.
        """
        timeout = self.timeout if timeout is None else timeout
        run_id = self.page.evaluate(
            "([p, c, i]) => window.__harness.run(p, c, i)", [self.path, name, index]
        )
        if not wait:
            return
        self.page.wait_for_function(
            "(id) => window.__harness.result(id).done", arg=run_id, timeout=timeout * 1000
        )
        error = self.page.evaluate("(id) => window.__harness.result(id).error", run_id)
        if error:
            raise HarnessError(f"{name} failed in the page: {error}")
        self.wait_idle(timeout)

    def run_all(self, timeout: float | None = None, check: bool = True) -> None:
        """Run every cell and wait for the kernel; raise :class:`CellError` if one failed."""
        self.command("notebook:run-all-cells", None, timeout)
        if check:
            self.check_cells()

    def run_cell(self, index: int, timeout: float | None = None, check: bool = True) -> None:
        """Run cell ``index`` (without moving on) and wait; see :meth:`run_all`."""
        self.command("notebook:run-cell", index, timeout)
        if check:
            self.check_cells([index])

    def cells(self) -> list[dict[str, Any]]:
        """Each cell's ``type``, ``source``, ``executionCount`` and nbformat ``outputs``."""
        cells = self.page.evaluate("(p) => window.__harness.cells(p)", self.path)
        if cells is None:
            raise HarnessError(f"notebook panel {self.path!r} not found in the page")
        return list(cells)

    def check_cells(self, indices: list[int] | None = None) -> None:
        """Raise :class:`CellError` if a (non-empty) code cell errored or did not run."""
        cells = self.cells()
        problems = []
        for i in range(len(cells)) if indices is None else indices:
            cell = cells[i]
            if cell["type"] != "code" or not cell["source"].strip():
                continue
            for out in cell["outputs"]:
                if out.get("output_type") == "error":
                    tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", [])))
                    problems.append(f"cell {i} raised {out['ename']}: {out['evalue']}\n{tb}")
            if cell["executionCount"] is None:
                problems.append(f"cell {i} was not executed")
        if problems:
            raise CellError("\n\n".join(problems))

    # -- DOM --------------------------------------------------------------------------------

    def cell(self, index: int) -> Locator:
        """The ``index``-th cell of the notebook."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Locator:
        """The output area of cell ``index`` (widgets render inside it)."""
        return self.cell(index).locator(".jp-OutputArea").first

    def wait_for(self, selector: str | Locator, timeout: float | None = None) -> Locator:
        """The first element matching ``selector`` once visible."""
        locator = self.page.locator(selector) if isinstance(selector, str) else selector
        locator = locator.first
        locator.wait_for(state="visible", timeout=(timeout or self.timeout) * 1000)
        return locator

    def screenshot(self, target: str | Locator, name: str) -> Path:
        """PNG of one element, ``<artifacts>/<ui>-<name>.png``; returns its path."""
        path = artifacts_dir() / f"{_slug(f'{self.ui}-{name}')}.png"
        self.wait_for(target).screenshot(path=str(path), animations="disabled")
        return path

    # -- kernel -----------------------------------------------------------------------------

    @property
    def kernel(self) -> ShellClient:
        """Shell-only client on this notebook's kernel (its connection file), cached."""
        if self._shell is None:
            session = self.server.session_for(self.path)
            if not session or not session.get("kernel"):
                raise HarnessError(f"no kernel session for {self.path!r}")
            conn = self.server.runtime_dir / f"kernel-{session['kernel']['id']}.json"
            self._shell = ShellClient.from_connection_file(conn, self.timeout)
        return self._shell

    def eval(self, expr: str) -> Any:
        """Value of ``expr`` in the notebook's kernel (JSON round trip, no output)."""
        return self.kernel.eval(expr, self.timeout)

    def wait_value(
        self, expr: str, expected: Any | Callable[[Any], bool], timeout: float | None = None
    ) -> Any:
        """Poll :meth:`eval` until it equals ``expected`` (or the predicate holds).

        Clicks reach the kernel as comm messages, asynchronously: assert with this.
        """
        ok = expected if callable(expected) else (lambda v: v == expected)
        deadline = time.monotonic() + (timeout or self.timeout)
        while not ok(value := self.eval(expr)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} is {value!r}, expected {expected!r}")
            time.sleep(0.05)
        return value

    def errors(self) -> list[str]:
        """Uncaught page errors and console errors so far, minus :data:`KNOWN_NOISE`."""
        found = [*self.page_errors, *(c for c in self.console if c.startswith("[error]"))]
        return [e for e in found if not any(noise in e for noise in KNOWN_NOISE)]

    # -- teardown ---------------------------------------------------------------------------

    def save_failure(self, name: str, error: str = "") -> None:
        """Full-page screenshot, the failure and the console log into the artifacts dir."""
        base = artifacts_dir() / _slug(f"FAILED-{self.ui}-{name}")
        with contextlib.suppress(Exception):
            self.page.screenshot(path=f"{base}.png", full_page=True)
        lines = [error, *self.console, *(f"[pageerror] {e}" for e in self.page_errors)]
        Path(f"{base}.log").write_text("\n".join(lines) + "\n")

    def close(self) -> None:
        """Close the page and kernel client, and shut the notebook's kernel down."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        with contextlib.suppress(Exception):
            self.context.close()
        with contextlib.suppress(Exception):
            session = self.server.session_for(self.path)
            if session:
                self.server.api("DELETE", f"/api/sessions/{session['id']}")


__all__ = [
    "CHROMIUM_PATH",
    "KNOWN_NOISE",
    "CellError",
    "HarnessError",
    "JupyterServer",
    "NotebookPage",
    "artifacts_dir",
    "expect",
    "launch_browser",
    "missing_requirement",
]
