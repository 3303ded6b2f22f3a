"""Debugging backwards from the dashboard: Step back, First NaN, Biggest spike; the Batch
panel's indices and per-sample losses, sorted; the Layers panel lighting a sentinel's
culprit (widgets/commands.py, controls.py, batch_panel.py, layers_panel.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

import luzwidget as lw
from luzwidget.control import commands
from luzwidget.widgets import Dashboard
from luzwidget.widgets.batch_panel import MAX_ITEMS
from tests.widgets.test_dashboard import _shown
from tests.widgets.test_panels import _digits_run, _open


def _ack(dash: Dashboard, msg: dict[str, Any]) -> dict[str, Any]:
    """The ack of ``msg``, with the rest of the message it came in (``"sent"``)."""
    dash._handle_custom_msg({**msg, "id": 77}, [])
    sent = dash.tick()
    return {**next(a for a in sent["acks"] if a["id"] == 77), "sent": sent}


def test_step_back_from_the_dashboard() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    assert not dash.tick()["status"]["buttons"]["step_back"]  # not started: nothing before
    run.step("batch", n=4)
    status = dash.tick()["status"]
    assert status["buttons"]["step_back"]
    assert status["buttons"]["find_nan"]
    ack = _ack(dash, {"cmd": "step_back"})
    assert ack["ok"], ack
    assert ack["message"].startswith("stepped back 1 batch to on_train_batch_end (epoch 1, ")
    assert "batches replayed from" in ack["message"]
    status = ack["sent"]["status"]
    assert (status["state"], status["event"]) == ("paused", "on_train_batch_end")
    assert (run.ctx.epoch, run.ctx.iter) == (1, 3)
    dash.close()


def test_first_nan_and_biggest_spike_from_the_dashboard() -> None:
    class Plant(lw.Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if (ctx.epoch, ctx.iter) == (2, 4):
                ctx.model[0].weight[0, 0] = torch.nan  # every later batch's loss is NaN

    run = _digits_run(epochs=3)
    run.add_callback(Plant())
    dash, _ = _shown(run)
    run.resume()
    ack = _ack(dash, {"cmd": "find", "condition": "nan"})
    assert ack["ok"], ack
    assert ack["message"].startswith(
        "found nan at epoch 2, batch 4 (batch 10 of the fit): non-finite weights of 0.weight"
    )  # set at that batch's end
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (2, 4, lw.Event.on_train_batch_begin)
    run.step("batch", n=2)
    ack = _ack(dash, {"cmd": "find", "condition": "biggest_spike"})
    assert ack["ok"]
    assert "not in the run's history" in ack["message"]  # NaNs are no spikes; too few batches
    ack = _ack(dash, {"cmd": "find", "condition": "banana"})
    assert not ack["ok"]
    assert "unknown condition 'banana'" in ack["message"]
    dash.close()


def test_the_batch_panel_shows_indices_and_losses_at_a_pause() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    _open(dash, "batch")
    run.step("batch", n=3)
    part = dash.tick()["batch"]
    assert part["losses"] is True
    items = part["items"]
    assert len(items) == 16
    indices = run.ctx.indices.tolist()
    losses = nnf.cross_entropy(run.ctx.pred, run.ctx.target, reduction="none").tolist()
    assert [it["i"] for it in items] == indices
    for it, loss in zip(items, losses, strict=True):
        assert abs(it["loss"] - loss) < 1e-5
    dash.close()


def test_a_batch_larger_than_drawn_shows_its_highest_losses() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    run = spec.set_opt_hparams(lr=0.1).run(
        (x, y), 1, verbose=False, dataloader_options={"batch_size": 64}
    )
    dash, _ = _shown(run)
    _open(dash, "batch")
    run.step("batch")
    part = dash.tick()["batch"]
    losses = run.sample_losses()
    assert losses is not None
    shown = [it["loss"] for it in part["items"]]
    assert len(shown) == MAX_ITEMS
    assert min(shown) >= float(losses.sort(descending=True).values[MAX_ITEMS - 1]) - 1e-6
    assert f"the {MAX_ITEMS} of 64 samples with the highest loss" in part["note"]
    assert part["image"]["n"] == MAX_ITEMS
    dash.close()


def test_while_training_the_panel_sends_no_losses() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    _open(dash, "batch")
    parts: list[Any] = []

    class Look(lw.Callback):
        def on_train_batch_end(self, ctx: Any) -> None:
            parts.append(dash._collector.panels["batch"]._batch("running"))

    run.add_callback(Look())
    run.step("batch", n=2)
    assert parts
    assert all(p["losses"] is False and p["items"][0]["loss"] is None for p in parts)
    assert all(p["items"][0]["i"] is not None for p in parts)
    dash.close()


def test_the_layers_panel_lights_a_sentinels_culprit() -> None:
    class Spare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
            self.spare = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    run = _digits_run(model=Spare())
    dash, _ = _shown(run)
    _open(dash, "layers")
    run.resume()
    assert run.reason.startswith("sentinel no_grad: parameter spare.weight")
    assert dash.tick()["layers"]["origin"] == {"kind": "parameter", "name": "spare.weight"}
    dash.close()


def test_the_command_table_holds_the_new_calls() -> None:
    run = _digits_run()
    run.step("batch", n=3)
    answer = commands.call(run, "sample_losses", {})
    assert len(answer.value["losses"]) == len(answer.value["indices"]) == 16
    answer = commands.call(run, "step_back", {"what": "event", "n": 2})
    assert run.reason.startswith("stepped back 2 events")
    answer = commands.call(run, "sentinel", {"check": "grad_explosion", "on": True})
    assert answer.value["grad_explosion"] is True
    answer = commands.call(run, "find", {"condition": "loss", "above": 1e9})
    assert answer.value is None
