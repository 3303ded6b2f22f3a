"""Time travel in JupyterLab and Notebook 7: snapshot, branch with a new lr, two curves, rewind.

Traces are counted in plotly's own data (``gd.data``) of the loss panel; kernel-side values
are read on the notebook kernel's shell channel. Element screenshots of each stage go to the
artifacts dir (``$LUZWIDGET_ARTIFACTS``).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright
from test_dashboard_browser import SETUP, SHOW, VIEWPORT, _dashboard, _wait_plotted

pytestmark = pytest.mark.browser

# Per trace of the loss panel: [name, points, is it the overlay's].
LOSS_TRACES = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="loss"] .js-plotly-plot');
  return gd && gd.data ? gd.data.map((t) => [t.name, t.x.length, t.meta === 'lw-overlay']) : [];
}"""


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


def _traces(dash: Any) -> list[list[Any]]:
    return [list(t) for t in dash.evaluate(LOSS_TRACES)]


def _wait_traces(nb: NotebookPage, dash: Any, pred: Any) -> list[list[Any]]:
    deadline = nb.page.evaluate("Date.now()") + 60_000
    while not pred(traces := _traces(dash)):
        assert nb.page.evaluate("Date.now()") < deadline, f"loss traces: {traces}"
        nb.page.wait_for_timeout(100)  # polling interval of a condition
    return traces


def _pick(timeline: Any, name: str) -> None:
    """Pick the snapshot ``name`` with the keyboard (Home, then right until it is there)."""
    timeline.press("Home")
    for _ in range(50):
        if timeline.get_attribute("aria-valuetext").startswith(f"{name}:"):
            return
        timeline.press("ArrowRight")
    raise AssertionError(f"no snapshot {name} on the timeline")


def _own(traces: list[list[Any]]) -> int:
    return next((n for _, n, mine in traces if not mine), 0)


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_snapshot_branch_two_curves_rewind_shrinks(open_notebook, ui: str) -> None:
    nb = open_notebook([SETUP.format(epochs=6), SHOW, "run.step('epoch', n=2)"], ui=ui)
    nb.page.set_viewport_size(VIEWPORT)
    nb.run_all()
    dash = _dashboard(nb)
    _wait_plotted(nb, dash, lambda c: (c.get("loss") or [0])[0] >= 2)
    travel = dash.get_by_role("toolbar", name="Time travel")
    timeline = dash.get_by_role("slider", name="Snapshots")
    n = nb.eval("len(run.snapshots)")
    travel.get_by_role("button", name="Snapshot", exact=True).click()
    nb.wait_value("len(run.snapshots)", n + 1)
    # the end of epoch 2, now labelled: one mark (the same state as the automatic one)
    expect(dash.locator(".lw-timeline-label")).to_contain_text(f"{n} snapshots, 1 named")
    nb.screenshot(dash, "travel-1-snapshot")

    # Branch with lr 0.01: the dashboard drives the branch, the parent is overlaid.
    travel.get_by_label("Learning rate of the branch").fill("0.01")
    travel.get_by_role("button", name="Branch", exact=True).click()
    nb.wait_value("len(run.features.travel.family.children)", 1)
    assert nb.eval("run.dashboard().run.ctx.optimizers['opt'].param_groups[0]['lr']") == 0.01
    runs = dash.get_by_role("group", name="Runs of this family")
    expect(runs.get_by_role("button")).to_have_count(2)
    expect(runs.get_by_role("button", pressed=True)).to_contain_text("lr 0.01 from epoch 2")
    dash.get_by_role("button", name="Resume", exact=True).click()
    nb.wait_value("run.dashboard().run.state", "done", timeout=120)
    traces = _wait_traces(nb, dash, lambda t: _own(t) == 6 and sum(m for *_, m in t) == 2)
    overlay = [t for t in traces if t[2]]
    assert [name for name, *_ in overlay] == ["main · train", "main · valid"]
    assert all(points == 2 for _, points, _ in overlay)  # the parent stopped at epoch 2
    nb.screenshot(dash, "travel-2-branch-trained")

    # Rewind the branch to the end of epoch 3: its own curve shrinks to 3 points.
    _pick(timeline, "e3")
    travel.get_by_role("button", name="Rewind", exact=True).click()
    nb.wait_value("[run.dashboard().run.ctx.epoch, run.dashboard().run.state]", [3, "paused"])
    _wait_traces(nb, dash, lambda t: _own(t) == 3 and sum(m for *_, m in t) == 2)
    nb.screenshot(dash, "travel-3-rewound")

    # One click drives main again: the branch is the overlay now.
    runs.get_by_role("button", name="main").click()
    nb.wait_value("run.dashboard().run is run", True)
    traces = _wait_traces(nb, dash, lambda t: _own(t) == 2 and any(m for *_, m in t))
    assert {name for name, _, mine in traces if mine} == {
        "lr 0.01 from epoch 2 · train",
        "lr 0.01 from epoch 2 · valid",
    }
    nb.screenshot(dash, "travel-4-main-driven")
    assert nb.errors() == []
