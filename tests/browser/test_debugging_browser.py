"""Debugging backwards in a real JupyterLab (issue 25): a run that went NaN is taken to the
first NaN and stepped back from the dashboard's controls bar, and the Batch panel shows the
batch sorted by each sample's loss, with its dataset indices. Element screenshots go to the
artifacts dir (``LUZWIDGET_ARTIFACTS``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import expect  # lazy: collecting must not need playwright

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

class Plant(lw.Callback):
    \"\"\"A weight set to NaN at the end of epoch 2, batch 30: every loss after is NaN.\"\"\"
    def on_train_batch_end(self, ctx):
        if (ctx.epoch, ctx.iter) == (2, 30):
            ctx.model[0].weight.data[0, 0] = float("nan")

net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
model = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1)
run = model.run(
    (X, torch.tensor(digits.target)), epochs=3, valid_data=0.2, verbose=False,
    callbacks=[Plant()], dataloader_options={"batch_size": 16},
)
"""

SHOW = "dash = run.dashboard(image_shape=(8, 8))\ndash"

VIEWPORT = {"width": 1440, "height": 2000}


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


LAST_X = "(gd) => Math.max(...gd.data.flatMap((t) => t.x))"


def _stream_cut_at(nb: Any, dash: Any, last: int) -> None:
    """Wait until the loss-per-batch plot (redrawn on its own clock) ends at batch ``last``:
    the batches after where the run went back to are gone from it."""
    plot = dash.locator(".lw-plot-stream .js-plotly-plot")
    deadline = time.monotonic() + 30
    while (drawn := plot.evaluate(LAST_X)) != last:
        assert time.monotonic() < deadline, f"the stream ends at {drawn}, not {last}"
        time.sleep(0.2)


def _losses(dash: Any) -> list[float]:
    texts = dash.locator(".lw-batch-item .lw-batch-loss").all_inner_texts()
    return [float(t.removeprefix("loss ")) for t in texts]


def test_first_nan_step_back_and_the_batch_sorted_by_loss(open_notebook) -> None:
    nb = open_notebook([SETUP, SHOW], ui="lab")
    nb.page.set_viewport_size(VIEWPORT)
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    badge = dash.get_by_role("status", name="Run state")
    back = dash.get_by_role("button", name="Step back")
    first_nan = dash.get_by_role("button", name="First NaN")
    expect(back).to_be_disabled()  # nothing behind a run that has not started

    dash.get_by_role("button", name="Start", exact=True).click()
    # A dashboard pauses once an epoch's loss is NaN (breakpoints.nonfinite_loss): the end of
    # epoch 2, whose batch 30 set the NaN; where did it start?
    reason = nb.wait_value("run.reason", lambda r: "loss became nan" in r)
    assert "epoch 2" in reason, reason
    expect(badge).to_have_text("paused")
    expect(first_nan).to_be_enabled()
    first_nan.click()
    expect(badge).to_have_text("paused")
    reason = nb.wait_value("run.reason", lambda r: r.startswith("found nan"))
    assert reason == "found nan at epoch 2, batch 30", reason
    message = dash.locator(".lw-message")
    expect(message).to_contain_text(  # (89 training batches an epoch)
        "found nan at epoch 2, batch 30 (batch 119 of the fit): non-finite weights of 0.weight"
    )
    assert nb.eval("[run.ctx.epoch, run.ctx.iter, run.event.value]") == [
        2,
        30,
        "on_train_batch_begin",
    ]
    assert nb.eval("bool(torch.isfinite(run.ctx.model[0].weight).all())")  # before it
    _stream_cut_at(nb, dash, 118)  # the 118 batches before it
    nb.screenshot(dash, "debugging-1-first-nan")

    # The batch: its samples by loss, highest first, each with its index in the dataset.
    dash.locator(".lw-batch summary").click()
    nb.wait_value("dash._collector.panels['batch'].open", True)
    items = dash.locator(".lw-batch-item")
    expect(items).to_have_count(16)
    expect(dash.locator(".lw-batch-sort")).to_have_text("sorted by loss ▾")
    losses = _losses(dash)
    assert len(losses) == 16
    assert losses == sorted(losses, reverse=True)
    shown = {int(t.removeprefix("#")) for t in dash.locator(".lw-batch-index").all_inner_texts()}
    assert shown == set(nb.eval("run.ctx.indices.tolist()"))
    worst = nb.eval("run.sample_losses().max().item()")
    assert losses[0] == pytest.approx(worst, rel=1e-2)
    nb.screenshot(dash.locator(".lw-batch"), "debugging-2-batch-by-loss")

    # Step back: the end of the batch before, exactly.
    back.click()
    nb.wait_value("run.reason", lambda r: r.startswith("stepped back 1 batch"))
    expect(badge).to_have_text("paused")
    assert nb.eval("[run.ctx.epoch, run.ctx.iter, run.event.value]") == [
        2,
        29,
        "on_train_batch_end",
    ]
    expect(message).to_contain_text(
        "stepped back 1 batch to on_train_batch_end (epoch 2, train batch 29)"
    )
    expect(dash.locator(".lw-batch-sort")).to_have_text("sorted by loss ▾")
    losses = _losses(dash)
    assert losses == sorted(losses, reverse=True)
    _stream_cut_at(nb, dash, 118)  # batch 29 of epoch 2 is the fit's 118th: done again
    nb.screenshot(dash, "debugging-3-stepped-back")
    assert nb.errors() == []
