"""The Layers and Batch panels in a real JupyterLab and Notebook 7 (issue 10).

A user opens both panels, steps one batch and reads the Layers table before and after the
optimizer step, sees the batch drawn as 8x8 digits with labels and predictions, ticks "find
where it came from", and a run fed an infinite weight pauses naming the module, its row lit.
Element screenshots go to the artifacts dir (``LUZWIDGET_ARTIFACTS``).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright

pytestmark = pytest.mark.browser

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
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
        )

    def forward(self, x):
        return self.net(x)

model = lw.setup(MLP, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1)
run = model.run(
    (X, torch.tensor(digits.target)), epochs=3, valid_data=0.2, verbose=False,
    dataloader_options={"batch_size": 16},
)
"""

SHOW = "dash = run.dashboard(image_shape=(8, 8))\ndash"

VIEWPORT = {"width": 1440, "height": 2000}

UNKNOWN = "\u2013"  # the en dash a cell shows for a value not known (parts/layers.js fmt)

BLANK = "(c) => Array.from(c.getContext('2d').getImageData(0, 0, 8, 8).data)"


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


def _step_to(nb: NotebookPage, dash: Any, event: str) -> None:
    dash.locator(".lw-step-event").select_option(event)
    before = nb.eval("run.n_events")
    dash.get_by_role("button", name="Step to the selected event").click()
    nb.wait_value(
        f"[run.n_events > {before}, run.state, getattr(run.event, 'value', None)]",
        [True, "paused", event],
    )


def _cell(dash: Any, param: str, col: str) -> Any:
    return dash.locator(f'.lw-layers tr[data-param="{param}"] td[data-col="{col}"]')


def _number(text: str) -> float:
    return float(text.replace(UNKNOWN, "nan"))


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_layers_and_batch_panels_step_and_find_a_nan(open_notebook, ui: str) -> None:
    nb = open_notebook([SETUP, SHOW], ui=ui)
    nb.page.set_viewport_size(VIEWPORT)
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    badge = dash.get_by_role("status", name="Run state")
    expect(badge).to_have_text("ready")
    layers = dash.locator(".lw-layers")
    expect(layers.locator(".lw-hint")).to_have_text("closed: nothing computed")
    assert "LayerTracker" not in nb.eval("[type(cb).__name__ for cb in run.ctx.callbacks]")

    layers.locator("summary").click()
    dash.locator(".lw-batch summary").click()
    nb.wait_value("[dash._collector.panels[p].open for p in ('layers', 'batch')]", [True, True])
    expect(dash.locator(".lw-layers tr.lw-layer-row")).to_have_count(6)

    # One batch, read before and after the optimizer step.
    _step_to(nb, dash, "on_train_batch_before_step")
    expect(_cell(dash, "net.0.weight", "update_norm")).to_have_text(UNKNOWN)  # no step yet
    expect(_cell(dash, "net.0.weight", "grad_norm")).not_to_have_text(UNKNOWN)
    grad = _number(_cell(dash, "net.0.weight", "grad_norm").locator(".lw-num").inner_text())
    assert grad > 0
    nb.screenshot(dash.locator(".lw-inside"), "panels-1-before-step")
    _step_to(nb, dash, "on_train_batch_after_step")
    update = _cell(dash, "net.0.weight", "update_norm").locator(".lw-num")
    expect(update).not_to_have_text(UNKNOWN)
    assert _number(update.inner_text()) == pytest.approx(0.1 * grad, rel=1e-2)  # SGD: lr * grad
    expect(_cell(dash, "net.0.weight", "update_ratio").locator(".lw-num")).not_to_have_text(UNKNOWN)

    # Sorting by a column header.
    dash.locator('.lw-layers th[data-col="norm"]').click()
    expect(dash.locator('.lw-layers th[data-col="norm"]')).to_have_attribute(
        "aria-sort", "descending"
    )
    norms = [
        _number(t) for t in dash.locator('.lw-layers td[data-col="norm"] .lw-num').all_inner_texts()
    ]
    assert norms == sorted(norms, reverse=True)

    # The batch as 8x8 digits, a label and a prediction under each.
    images = dash.locator(".lw-batch canvas.lw-batch-img")
    expect(images).to_have_count(16)
    assert images.first.evaluate("(c) => [c.width, c.height]") == [8, 8]
    rgba = images.first.evaluate(BLANK)
    assert any(v > 0 for i, v in enumerate(rgba) if i % 4 < 3), "the canvas is blank"
    sort = dash.locator(".lw-batch-sort")
    expect(sort).to_have_text("sorted by loss ▾")  # at a pause: by loss, highest first
    sort.click()
    expect(sort).to_have_text("batch order")
    captions = dash.locator(".lw-batch-item .lw-batch-label").all_inner_texts()
    targets = nb.eval("[str(int(t)) for t in run.ctx.target[:16]]")
    assert [c.split(" · ")[0] for c in captions] == [f"y {t}" for t in targets]
    assert all("ŷ " in c for c in captions)
    wrong = nb.eval("int((run.ctx.pred.argmax(1) != run.ctx.target).sum())")
    expect(dash.locator(".lw-batch-item.lw-wrong")).to_have_count(wrong)
    nb.screenshot(dash.locator(".lw-inside"), "panels-2-after-step")

    # To the end of the epoch: the confusion matrices of its training and validation passes.
    before = nb.eval("run.n_events")
    dash.get_by_role("button", name="Step epoch", exact=True).click()
    nb.wait_value(f"[run.n_events > {before}, run.state]", [True, "paused"])
    expect(dash.locator(".lw-cm")).to_have_count(2)
    n_valid = nb.eval("len(run.ctx.valid_data.dataset)")
    valid_counts = dash.locator('.lw-cm[data-set="valid"] td').all_inner_texts()
    assert sum(int(t) for t in valid_counts if t) == n_valid
    nb.screenshot(dash.locator(".lw-batch"), "panels-2b-confusion")

    # Where a NaN came from: tick the box, plant an infinite weight, resume.
    dash.get_by_label("…and find where it came from").check()
    nb.wait_value("run.breakpoints.nonfinite", True)
    nb.eval("run.ctx.model.net[2].weight.data.__setitem__((0, 0), float('inf'))")
    dash.get_by_role("button", name="Resume", exact=True).click()
    expect(badge).to_have_text("paused")
    reason = nb.wait_value("run.reason", lambda r: r.startswith("non-finite"))
    assert "net.2 (Linear)" in reason, reason
    origin = dash.locator('.lw-layers tr[data-param="net.2.weight"]')
    expect(origin).to_have_class("lw-layer-row lw-nonfinite lw-origin")
    expect(dash.locator(".lw-layers-note")).to_have_text("non-finite output of net.2")
    expect(dash.locator(".lw-log-entry").last).to_contain_text("net.2 (Linear)")
    expect(dash.locator(".lw-message")).not_to_have_text("resumed")  # no stale "resumed"
    skip = dash.get_by_role("button", name="Skip batch")
    expect(skip).to_be_visible()
    nb.screenshot(dash, "panels-3-nan-pause")
    assert nb.errors() == []
