"""The dashboard in marimo (``marimo run examples/marimo_dashboard.py``), driven by clicks.

marimo wraps the same anywidget with ``mo.ui.anywidget``; kernel values are not reachable
from outside its session, so every effect is read from the page: the badge, the batch bar,
the answer next to the lr box.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import REPO_ROOT, artifacts_dir, expect

pytestmark = pytest.mark.browser

APP = REPO_ROOT / "examples" / "marimo_dashboard.py"


@pytest.fixture
def marimo_page(browser, tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("marimo")
    from marimo_server import MarimoServer

    with MarimoServer(APP, tmp_path) as server:
        context = browser.new_context(viewport={"width": 1440, "height": 1400})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            with contextlib.suppress(Exception):
                context.close()


def test_start_pause_step_edit_stop_in_marimo(marimo_page: Any) -> None:
    page = marimo_page
    dash = page.locator(".lw-dashboard").first
    dash.wait_for(state="visible", timeout=120_000)
    badge = dash.get_by_role("status", name="Run state")
    expect(badge).to_have_text("ready", timeout=60_000)

    dash.get_by_role("button", name="Start", exact=True).click()
    expect(badge).to_have_text("running", timeout=30_000)
    dash.get_by_role("button", name="Pause", exact=True).click()
    expect(badge).to_have_text("paused", timeout=30_000)

    # A pause lands inside a batch: the first step ends it; the second is one batch further.
    batch_text = dash.locator(".lw-bar-row").nth(1).locator(".lw-bar-text")
    step = dash.get_by_role("button", name="Step batch", exact=True)
    log = dash.locator(".lw-log-entry")
    for _ in range(2):
        expect(step).to_be_enabled()
        before, n_log = batch_text.text_content(), log.count()
        step.click()
        expect(log).not_to_have_count(n_log, timeout=30_000)  # the step was logged
        expect(badge).to_have_text("paused", timeout=30_000)
    expect(batch_text).not_to_have_text(before or "", timeout=30_000)

    lr_box = dash.get_by_label("lr", exact=True)
    lr_box.fill("0.01")
    lr_box.press("Enter")
    lr_msg = dash.locator(f"#{lr_box.get_attribute('aria-describedby')}")
    expect(lr_msg).to_have_text("lr of opt set to 0.01", timeout=30_000)
    dash.screenshot(path=str(artifacts_dir() / "marimo-dashboard-paused.png"))

    dash.get_by_role("button", name="Stop", exact=True).click()
    expect(badge).not_to_have_text("paused", timeout=30_000)
    expect(badge).not_to_have_text("running", timeout=30_000)
    expect(dash.get_by_role("button", name="Pause", exact=True)).to_be_disabled()
    assert page.errors == []
