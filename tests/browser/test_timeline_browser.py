"""The time-travel timeline after 300 epochs, in JupyterLab (light and dark) and Notebook 7.

A small MLP on random data trains 300 epochs (two batches each) with its automatic
snapshots and one labelled: the timeline stays one track of bounded height (no rows of
chips), the labelled snapshot is named, a click on a mark picks that snapshot and Rewind
goes there; the plots mark only the labelled and the picked snapshot. The Layers table's
last column (NaN/inf) is visible at 1,280 px. Screenshots go to the artifacts dir.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright
from test_dashboard_browser import STREAM_LAST
from test_dashboard_theme_browser import _dark

pytestmark = pytest.mark.browser

SETUP = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
X, y = torch.randn(256, 64), torch.randint(0, 10, (256,))

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU())
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        return self.classifier(self.encoder(x))

model = lw.setup(MLP, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD,
                 metrics=[lw.metrics.Accuracy()]).set_opt_hparams(lr=0.05)
run = model.run((X, y), epochs=300, valid_data=0.25, verbose=False,
                dataloader_options={"batch_size": 96})
"""
SHOW = "run.dashboard()"
TRAIN = "run.step('epoch', n=120); run.snapshot('lr cut'); run.step('epoch', n=180)"
PER_EPOCH = 2  # training batches an epoch (192 samples, batches of 96)

# Where the loss panel's shapes sit: [[x0, dash]] of each (a path's x from its "M<x>").
SHAPES = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="__stream"] .js-plotly-plot');
  const shapes = (gd && gd.layout && gd.layout.shapes) || [];
  return shapes.filter((s) => s.name === 'lw-overlay').map((s) =>
    [s.type === 'path' ? s.path : s.x0, s.line.dash || 'solid']);
}"""


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


def _click_at(track: Any, x: float) -> None:
    """Click the track where stream x ``x`` is drawn (timeline.js: PAD 10 px each side)."""
    box = track.bounding_box()
    span = float(track.get_attribute("data-span"))
    track.click(position={"x": 10 + (box["width"] - 20) * x / span, "y": 30})


@pytest.mark.parametrize("ui", ["lab", "lab-dark", "notebook"])
def test_the_timeline_after_300_epochs(open_notebook, ui: str) -> None:
    nb = open_notebook([SETUP, SHOW, TRAIN], ui="notebook" if ui == "notebook" else "lab")
    nb.page.set_viewport_size({"width": 1280, "height": 1400})
    if ui == "lab-dark":
        _dark(nb)
    nb.run_all(timeout=300)
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    expect(dash.get_by_role("status", name="Run state")).to_have_text("paused", timeout=120_000)
    track = dash.get_by_role("slider", name="Snapshots")
    n = nb.eval("len(run.snapshots)")
    assert n == 302  # the start, 300 epoch ends, the labelled one (at the end of epoch 120)
    # The labelled one and epoch 120's automatic one hold one state: one mark, the named.
    expect(track).to_have_attribute("aria-valuemax", str(n - 2))
    expect(dash.locator(".lw-timeline-label")).to_contain_text("301 snapshots, 1 named")
    expect(dash.locator(".lw-timeline-label")).to_contain_text("latest: e300")
    part = dash.locator(".lw-travel-part")
    assert part.bounding_box()["height"] < 120  # one track: no rows of chips
    assert track.bounding_box()["height"] == 44
    nb.screenshot(part, f"timeline-300-{ui}")

    # The plots mark the labelled snapshot only (not 300 dashed lines).
    nb.page.wait_for_function(f"(root) => ({SHAPES})(root).length === 1", arg=dash.element_handle())
    assert dash.evaluate(SHAPES) == [[f"M{120 * PER_EPOCH},0V1", "dot"]]

    # A click on epoch 50's mark picks it; the plots mark it; Rewind goes there.
    _click_at(track, 50 * PER_EPOCH)
    expect(track).to_have_attribute("aria-valuetext", "e50: end of epoch 50")
    expect(dash.locator(".lw-timeline-label")).to_contain_text("Picked: e50")
    nb.page.wait_for_function(f"(root) => ({SHAPES})(root).length === 2", arg=dash.element_handle())
    assert [100, "solid"] in dash.evaluate(SHAPES)
    # The keyboard moves the pick: one mark right is epoch 51.
    track.press("ArrowRight")
    expect(track).to_have_attribute("aria-valuetext", "e51: end of epoch 51")
    track.press("ArrowLeft")
    # Hovering names the mark under the pointer.
    box = track.bounding_box()
    track.hover(position={"x": 10 + (box["width"] - 20) * 240 / 600, "y": 30})
    expect(dash.locator(".lw-timeline-tip")).to_contain_text("“lr cut”")
    nb.screenshot(dash.locator(".lw-travel-part"), f"timeline-picked-{ui}")
    dash.get_by_role("button", name="Rewind", exact=True).click()
    nb.wait_value("[run.ctx.epoch, run.state]", [50, "paused"])
    # the plots go back too: the stream ends at epoch 50, the picked marker is gone
    nb.page.wait_for_function(
        f"(root) => ({STREAM_LAST})(root) === {50 * PER_EPOCH} && ({SHAPES})(root).length === 1",
        arg=dash.element_handle(),
    )
    nb.screenshot(dash, f"timeline-rewound-{ui}")
    _layers_fit(nb, dash, ui)
    assert nb.errors() == []
    if ui == "lab-dark":  # the theme is a user setting of the server: back to light
        nb.page.evaluate(
            "() => window.jupyterapp.commands.execute('apputils:change-theme',"
            " {theme: 'JupyterLab Light'})"
        )
        nb.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")


def _layers_fit(nb: NotebookPage, dash: Any, ui: str) -> None:
    """The Layers panel open at 1,280 px: its last column (NaN/inf) is in view."""
    dash.locator(".lw-layers summary").click()
    expect(dash.locator(".lw-layers tr.lw-layer-row")).to_have_count(6)
    dash.locator(".lw-batch summary").click()
    last = dash.locator('.lw-layers th[data-col="nonfinite"]')
    scroller = dash.locator(".lw-layers-scroll")
    expect(dash.locator(".lw-batch .lw-batch-item")).not_to_have_count(0)
    nb.screenshot(dash.locator(".lw-inside"), f"layers-1280-{ui}")
    right, edge = last.bounding_box(), scroller.bounding_box()
    assert right["x"] + right["width"] <= edge["x"] + edge["width"] + 0.5, (right, edge)
