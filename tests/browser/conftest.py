"""Fixtures for browser tests: one Jupyter server per session, one Chromium per module.

Browser tests skip (with the reason) where Chromium or Playwright is missing, except under
``CI=true``, where they fail: CI must never skip them silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
from harness import NotebookPage, launch_browser, missing_requirement
from lab_server import UI, JupyterServer


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    """Skip (fail on CI) when the browser stack is not installed."""
    reason = missing_requirement()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"browser tests cannot run on CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def jupyter_server(browser_requirements: None, tmp_path_factory) -> Iterator[JupyterServer]:
    """An isolated ``jupyter lab`` server (Lab under /lab, Notebook 7 under /notebooks)."""
    with JupyterServer(tmp_path_factory.mktemp("jupyter")) as server:
        yield server


@pytest.fixture(scope="module")
def browser(browser_requirements: None):
    """Headless Chromium (Playwright), shared by the tests of one module.

    Not session-wide: while Playwright's sync API is alive it marks an asyncio loop as
    running in the main thread, so ``asyncio.run()`` in later (non-browser) tests would fail.
    """
    with launch_browser() as b:
        yield b


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so fixtures can see a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def open_notebook(
    request, jupyter_server: JupyterServer, browser
) -> Iterator[Callable[..., NotebookPage]]:
    """``open_notebook(cells, ui="lab")``: write the cells as a notebook and open it.

    Pages are closed (and their kernels shut down) after the test; a failed test leaves a
    full-page screenshot and the console log in the artifacts dir.
    """
    pages: list[NotebookPage] = []

    def _open(cells: list[str], ui: UI = "lab", name: str | None = None) -> NotebookPage:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name or f"{request.node.name}-{len(pages)}")
        path = jupyter_server.write_notebook(f"{stem}.ipynb", cells)
        page = NotebookPage(jupyter_server, browser, path, ui=ui)
        pages.append(page)
        return page.open()

    yield _open
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for page in pages:
        if failed:
            page.save_failure(request.node.name, request.node.rep_call.longreprtext)
        page.close()
