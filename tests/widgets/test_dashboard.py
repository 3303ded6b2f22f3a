"""The dashboard against a real Run: snapshots, stepping highlights, errors, edits, detaching."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.widgets import Dashboard
from luzwidget.widgets.feed import DashboardFeed


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _run(epochs: int = 2, callbacks: list[Any] | None = None) -> lw.Run:
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = (x.sum(1, keepdim=True) > 0).float()
    spec = lw.setup(
        Net,
        loss=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.SGD,
        metrics=[lw.metrics.BinaryAccuracyWithLogits()],
    )
    return spec.set_opt_hparams(lr=0.1).run(
        (x, y),
        epochs=epochs,
        valid_data=(x[:32], y[:32]),
        verbose=False,
        callbacks=callbacks,
        dataloader_options={"batch_size": 16},
    )


def _shown(run: lw.Run, **kwargs: Any) -> tuple[Dashboard, list[dict[str, Any]]]:
    dash = Dashboard(run, **kwargs)
    sent: list[dict[str, Any]] = []
    dash.send = lambda msg, buffers=None: sent.append(json.loads(json.dumps(msg, allow_nan=False)))  # type: ignore[method-assign]
    dash._handle_custom_msg({"cmd": "hello"}, [])
    return dash, sent


def test_snapshot_describes_everything() -> None:
    run = _run()
    dash, _ = _shown(run)
    snap = dash.tick()
    assert snap["type"] == "snapshot"
    assert snap["events"] == [e.value for e in lw.Event]
    assert snap["status"]["state"] == "ready"
    assert snap["status"]["start_label"] == "Start"
    assert snap["config"]["optimizers"] == [{"name": "opt", "lr": "0.1"}]
    assert snap["config"]["max_epochs"] == "2"
    rows = snap["inspector"]["rows"]
    assert set(snap["inspector"]["order"]) >= {"model", "loss", "pred", "optimizers", "records"}
    assert rows["model"].startswith("Net · 49 params")
    assert rows["optimizers"] == "{opt: SGD lr=0.1}"
    assert "16 batches" not in rows["train_data"]
    assert rows["train_data"] == "IndexLoader · 6 batches · batch_size 16"  # tensors: by index
    assert any(isinstance(cb, DashboardFeed) for cb in run.ctx.callbacks)
    dash.close()


def test_before_the_first_epoch_progress_shows_the_training_batches_to_come() -> None:
    run = _run()
    dash, _ = _shown(run)
    progress = dash.tick()["progress"]
    assert (progress["phase"], progress["iter"], progress["n_batches"]) == ("train", 0, 6)
    assert progress["epoch"] == 0
    run.step("batch")
    progress = dash.tick()["progress"]
    assert (progress["phase"], progress["iter"], progress["n_batches"]) == ("train", 1, 6)
    dash.close()


def test_stepping_highlights_what_changed_at_the_last_event() -> None:
    run = _run()
    dash, _ = _shown(run)
    dash.tick()
    run.step("batch")
    dash.tick()
    expected = {
        lw.Event.on_train_batch_begin: {"batch", "input", "target", "iter"},
        lw.Event.on_train_batch_after_pred: {"pred"},
        lw.Event.on_train_batch_after_loss: {"loss"},
        lw.Event.on_train_batch_before_step: {"model"},  # the gradients are there
        lw.Event.on_train_batch_after_step: {"model"},  # the weights moved
    }
    for event, fields in expected.items():
        run.step(event)
        msg = dash.tick()
        assert msg is not None
        hl = set(msg["inspector"].get("hl", dash._collector.inspector.hl))  # sent when it changes
        assert fields <= hl, (event, hl)
        if event == lw.Event.on_train_batch_after_step:
            model_row = msg["inspector"]["rows"]["model"]
            assert "‖grad‖" in model_row
            assert "Δw" in model_row
            assert "Δw 0 " not in model_row + " "
    assert any(e["text"] == "on_train_batch_after_pred" for e in dash._collector.log.entries)
    dash.close()


def test_events_while_stepping_are_logged_running_is_summarised() -> None:
    holder: dict[str, Any] = {}

    class TickAtTrainEnd(lw.Callback):  # a tick in the middle of a running epoch
        def on_train_end(self, ctx: Any) -> None:
            if "dash" in holder:
                holder["mid"] = holder["dash"].tick()

    run = _run(epochs=3, callbacks=[TickAtTrainEnd()])
    dash, _ = _shown(run)
    dash.tick()
    run.step(lw.Event.on_train_batch_after_pred)
    msg = dash.tick()
    texts = [e["text"] for e in msg["log"]]
    assert texts[:3] == ["on_fit_begin", "on_epoch_begin", "on_train_begin"]
    assert texts[-1] == "paused: stepped to on_train_batch_after_pred"
    assert msg["log"][-1]["where"] == "epoch 1 · batch 1"  # from the context, not the text
    holder["dash"] = dash
    run.step("epoch")
    assert holder["mid"]["status"]["state"] == "running"
    assert not any(e["kind"] == "event" for e in holder["mid"].get("log", []))
    msg = dash.tick()
    first = msg["log"][0]
    assert first["kind"] == "info"
    assert " events (#" in first["text"]
    numbered = [e["n"] for e in msg["log"] if "n" in e]
    assert numbered == list(range(numbered[0], numbered[0] + len(numbered)))  # no gap
    assert first["text"].endswith(f"-#{numbered[0] - 1:,})")  # the count ends where they begin
    assert msg["log"][-1]["text"].startswith("paused: stepped to on_epoch_end")
    dash.close()


def test_error_shows_traceback_and_retry_skip() -> None:
    class Boom(lw.Callback):
        fired = 0

        def on_train_batch_end(self, ctx: Any) -> None:
            Boom.fired += 1
            if Boom.fired == 3:
                raise ValueError("bad batch")

    run = _run(callbacks=[Boom()])
    dash, _ = _shown(run)
    dash.tick()
    run.resume()
    assert run.state == "error"
    msg = dash.tick()
    assert msg["status"]["state"] == "error"
    assert msg["status"]["buttons"]["retry"]
    assert msg["status"]["buttons"]["skip"]
    assert not msg["status"]["buttons"]["start"]
    assert msg["error"]["type"] == "CallbackError"
    assert "bad batch" in msg["error"]["message"]
    assert "ValueError" in msg["error"]["traceback"]
    assert msg["log"][-1]["kind"] == "error"
    dash._handle_custom_msg({"cmd": "skip", "id": 3}, [])
    run.wait(30)
    msg = dash.tick()
    assert msg["acks"][0]["ok"]
    assert run.state == "done"
    assert msg["error"] is None
    dash.close()


def test_loss_stream_and_records_reach_the_browser() -> None:
    run = _run(epochs=2)
    dash, _sent = _shown(run)
    dash.tick()
    run.resume()
    msg = dash.tick()
    xs = msg["stream"]["loss"]["x"]
    assert xs == list(range(1, 13))  # 6 batches x 2 epochs, x = training batch number
    assert all(isinstance(v, float) for v in msg["stream"]["loss"]["ema"])
    records = {(s, m, e) for s, m, e, _ in msg["records"]}
    assert ("train", "loss", 2) in records
    assert ("valid", "acc", 1) in records
    assert msg["status"]["state"] == "done"
    assert next(iter(msg["progress"]["metrics"]))[0] == "train"
    dash.close()


def test_close_detaches_from_the_run() -> None:
    run = _run()
    dash, _sent = _shown(run)
    dash.close()
    assert not any(isinstance(cb, DashboardFeed) for cb in run.ctx.callbacks)
    run.resume()  # records are logged; nobody listens any more
    assert run.state == "done"
    assert dash._collector.records_q == type(dash._collector.records_q)()


def test_parts_pick_a_subset_and_unknown_parts_are_refused() -> None:
    run = _run()
    dash = Dashboard(run, parts=("progress", "plots"))
    assert dash.parts == ["progress", "plots"]
    with pytest.raises(ValueError, match="unknown"):
        Dashboard(run, parts=["controls", "wat"])
    dash.close()


def test_plotly_library_is_shared() -> None:
    a, b = Dashboard(_run()), Dashboard(_run())
    assert a._lib is b._lib
    assert len(a._esm) < 100_000 < len(a._lib._esm)  # plotly.js travels once, in the library
    a.close()
    b.close()


def test_a_run_driven_by_a_cell_disables_the_buttons_and_says_why() -> None:
    holder: dict[str, Any] = {}

    class TickMidEpoch(lw.Callback):
        def on_train_batch_end(self, ctx: Any) -> None:
            if ctx.iter == 3 and "dash" in holder and "mid" not in holder:
                holder["mid"] = holder["dash"].tick()

    run = _run(callbacks=[TickMidEpoch()])
    dash, _ = _shown(run)
    dash.tick()
    holder["dash"] = dash
    run.resume()  # blocking, on this (the main) thread, as in a cell
    status = holder["mid"]["status"]
    assert status["state"] == "running"
    assert not any(status["buttons"].values())
    assert "run.start()" in status["hint"]
    final = dash.tick()["status"]
    assert final["state"] == "done"
    assert final["hint"] == ""
    dash.close()


def test_pause_on_nonfinite_loss_starts_ticked_in_a_dashboard_only() -> None:
    headless = _run()
    assert headless.breakpoints.nonfinite_loss is False
    live_view = _run()
    Dashboard(live_view, parts=("progress", "plots"))  # what a blocking fit() shows
    assert live_view.breakpoints.nonfinite_loss is False
    run = _run()
    dash = Dashboard(run)
    assert run.breakpoints.nonfinite_loss is True
    assert not run.breakpoints  # no per-batch check: the loop still runs free
    dash.close()


def test_an_estimate_from_a_rate_near_zero_reads_unknown() -> None:
    from luzwidget.widgets.progress import clock

    assert clock(float("inf")) == "?"
    assert clock(float("nan")) == "?"
    assert clock(3723.4) == "1:02:03"
    assert clock(-5) == "0:00"
