"""The picture in the README and on the docs' front page, taken as a user would see it.

A run of the digits MLP in JupyterLab Light, stepped five epochs, a snapshot taken, a
branch made from epoch 2 with another learning rate and trained two epochs, the Layers and
Batch panels open, paused inside a batch. The test asserts what the picture promises (the
time-travel bar with its snapshots, two runs in the Drive strip, the parent's curves
overlaid, one Layers row per parameter, the batch drawn as images, the confusion
matrices); with ``LUZWIDGET_UPDATE_DOCS=1`` the screenshot also replaces
``docs/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from harness import REPO_ROOT, NotebookPage, expect  # lazy: collecting must not need playwright
from test_travel_browser import _pick

pytestmark = pytest.mark.browser

DOCS_IMAGE = REPO_ROOT / "docs" / "dashboard.png"

SETUP = """\
import torch
from torch import nn
from sklearn.datasets import load_digits
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16

class MLP(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)

model = lw.setup(
    MLP, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD,
    metrics=[lw.metrics.Accuracy()],
).set_opt_hparams(lr=0.05)
run = model.run(
    (X, torch.tensor(digits.target)), epochs=8, valid_data=0.2, verbose=False,
    dataloader_options={"batch_size": 16},
)
"""

SHOW = "dash = run.dashboard(image_shape=(8, 8))\ndash"

VIEWPORT = {"width": 1720, "height": 2400}

# The parent's curves are drawn on the branch's loss plot (plotly's own data).
OVERLAID = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="loss"] .js-plotly-plot');
  return !!(gd && gd.data && gd.data.some((t) => t.meta === 'lw-overlay'));
}"""


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


def _settle(nb: NotebookPage, button: Any, driven: str = "run") -> None:
    """Click a stepping button; wait until the driven run stepped and is paused again."""
    before = nb.eval(f"{driven}.n_events")
    button.click()
    nb.wait_value(f"[{driven}.n_events > {before}, {driven}.state]", [True, "paused"])


def test_the_docs_picture_shows_time_travel_and_both_panels(open_notebook) -> None:
    nb = open_notebook([SETUP, SHOW, "run.step('epoch', n=5)"], ui="lab")
    nb.page.set_viewport_size(VIEWPORT)
    # The picture is of the light theme, whatever an earlier test left in Lab's settings.
    nb.page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme',"
        " {theme: 'JupyterLab Light'})"
    )
    nb.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    nb.wait_value("[run.ctx.epoch, run.state]", [5, "paused"])

    # A snapshot, then a branch from epoch 2 with lr 0.5, which the dashboard drives.
    travel = dash.get_by_role("toolbar", name="Time travel")
    n = nb.eval("len(run.snapshots)")
    travel.get_by_role("button", name="Snapshot", exact=True).click()
    nb.wait_value("len(run.snapshots)", n + 1)
    timeline = dash.get_by_role("slider", name="Snapshots")
    _pick(timeline, "e2")
    travel.get_by_label("Learning rate of the branch").fill("0.5")
    travel.get_by_role("button", name="Branch", exact=True).click()
    nb.wait_value("len(run.features.travel.family.children)", 1)
    branch = "dash.run"
    runs = dash.get_by_role("group", name="Runs of this family")
    expect(runs.get_by_role("button")).to_have_count(2)
    expect(runs.get_by_role("button", pressed=True)).to_contain_text("lr 0.5 from epoch 2")

    # Both panels open; the branch trains two epochs, then steps into a batch.
    dash.locator(".lw-layers summary").click()
    dash.locator(".lw-batch summary").click()
    nb.wait_value("[dash._collector.panels[p].open for p in ('layers', 'batch')]", [True, True])
    _settle(nb, dash.get_by_role("button", name="Step epoch", exact=True), branch)
    _settle(nb, dash.get_by_role("button", name="Step epoch", exact=True), branch)
    dash.locator(".lw-step-event").select_option("on_train_batch_after_step")
    _settle(nb, dash.get_by_role("button", name="Step to the selected event"), branch)

    expect(dash.locator(".lw-layers tr.lw-layer-row")).to_have_count(4)
    expect(dash.locator(".lw-batch canvas.lw-batch-img")).to_have_count(16)
    expect(dash.locator(".lw-cm")).to_have_count(2)
    assert int(timeline.get_attribute("aria-valuemax")) >= 1  # two snapshots at least
    dash.page.wait_for_function(OVERLAID, arg=dash.element_handle(), timeout=30_000)
    nb.page.wait_for_timeout(1000)  # plots redraw on their own clock (at most ~3/s)
    shot = nb.screenshot(dash, "docs-dashboard")
    assert nb.errors() == []
    if os.environ.get("LUZWIDGET_UPDATE_DOCS"):
        shutil.copyfile(shot, DOCS_IMAGE)
