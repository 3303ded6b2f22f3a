"""The Layers and Batch panels (widgets/layers_panel.py, batch_panel.py) and issue 10's fixes.

Pinned: a closed panel installs nothing in the run (no tracker callback, no hook) and sends
nothing but ``{"open": False}``; an open one shows each step's update, the batch as 8x8
images with labels and predictions, the epoch's confusion matrices; the NaN origin row; the
dashboard's Continue on a finished run; Δw kept; highlights against the last pause; "all NaN".
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.engine import engine_of
from luzwidget.core.summaries import tensor_summary
from luzwidget.insight.layers import LayerTracker
from luzwidget.insight.trackers import tracker
from luzwidget.widgets import Dashboard
from luzwidget.widgets.batch_panel import EpochConfusion, image_layout
from luzwidget.widgets.commands import Ack
from tests.widgets.test_dashboard import _shown


def _digits_run(epochs: int = 2, lr: float = 0.1, model: nn.Module | None = None) -> lw.Run:
    torch.manual_seed(0)
    x = torch.randn(96, 64)
    y = torch.randint(0, 10, (96,))
    net = model or nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=lr).run(
        (x, y),
        epochs=epochs,
        valid_data=(x[:32], y[:32]),
        verbose=False,
        dataloader_options={"batch_size": 16},
    )


def _open(dash: Dashboard, name: str, value: bool = True) -> None:
    dash._handle_custom_msg({"cmd": "panel", "name": name, "open": value, "id": 9}, [])


def _names(run: lw.Run) -> set[str]:
    return {type(cb).__name__ for cb in run.ctx.callbacks}


def test_closed_panels_cost_a_free_run_nothing() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    snap = dash.tick()
    assert snap["layers"] == {"open": False}
    assert snap["batch"] == {"open": False}
    seen: list[set[str]] = []
    hooks: list[int] = []

    class Look(lw.Callback):
        def on_train_batch_end(self, ctx: Any) -> None:
            seen.append(_names(run))
            hooks.append(sum(len(m._forward_hooks) for m in ctx.model.modules()))
            dash.tick()

    run.add_callback(Look())
    run.resume()
    assert run.state == "done"
    assert seen
    assert all(not names & {"LayerTracker", "EpochConfusion"} for names in seen)
    assert set(hooks) == {0}
    dash.close()


def test_a_closed_panel_sends_nothing_after_saying_so() -> None:
    run = _digits_run()
    dash, _sent = _shown(run)
    dash.tick()
    run.step("batch")
    msg = dash.tick()
    assert msg is not None
    assert "layers" not in msg
    assert "batch" not in msg
    dash.close()


def test_opening_layers_subscribes_the_tracker_and_shows_each_step() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.tick()
    _open(dash, "layers")
    assert "LayerTracker" in _names(run)
    run.step(lw.Event.on_train_batch_before_step)
    before = dash.tick()["layers"]
    fields = before["fields"]
    assert fields == [
        "name",
        "shape",
        "norm",
        "grad_norm",
        "update_norm",
        "update_ratio",
        "nonfinite",
    ]
    rows = {r[0]: dict(zip(fields, r, strict=True)) for r in before["rows"]}
    assert rows["0.weight"]["shape"] == "16x64"
    assert rows["0.weight"]["grad_norm"] > 0
    assert rows["0.weight"]["update_norm"] is None
    run.step(lw.Event.on_train_batch_after_step)
    after = dash.tick()["layers"]
    rows = {r[0]: dict(zip(fields, r, strict=True)) for r in after["rows"]}
    grad = next(r for r in before["rows"] if r[0] == "0.weight")[3]
    assert rows["0.weight"]["update_norm"] == pytest.approx(0.1 * grad, rel=1e-4)  # plain SGD
    _open(dash, "layers", False)
    assert "LayerTracker" not in _names(run)
    assert dash.tick()["layers"] == {"open": False}
    dash.close()


def test_while_running_the_open_panels_publish_at_most_at_their_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from luzwidget.widgets import batch_panel, layers_panel
    from luzwidget.widgets.inspector import INSPECT_EVERY_S

    run = _digits_run()
    dash, _ = _shown(run)
    _open(dash, "layers")
    _open(dash, "batch")
    run.step("batch")
    now = [100.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(layers_panel, "time", Clock)
    monkeypatch.setattr(batch_panel, "time", Clock)
    layers, batch = dash._collector.panels["layers"], dash._collector.panels["batch"]
    assert batch.part("running", False) is not None  # first look
    # Layers asks the driving thread, which computes the table at the batch's end...
    assert layers.part("running", False) is None
    run.step("batch")
    now[0] += INSPECT_EVERY_S / 2
    assert layers.part("running", False) is not None  # ...sent at the next tick
    assert batch.part("running", False) is None  # something changed, but the last look was just now
    run.step("batch")
    assert layers.part("running", False) is None  # not asked again within the interval
    now[0] += INSPECT_EVERY_S
    assert batch.part("running", False) is not None
    assert layers.part("running", False) is None  # asks
    run.step("batch")
    assert layers.part("running", False) is not None
    dash.close()


def test_close_lets_go_of_the_tracker() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    _open(dash, "layers")
    _open(dash, "batch")
    assert {"LayerTracker", "EpochConfusion"} <= _names(run)
    dash.close()
    assert not {"LayerTracker", "EpochConfusion"} & _names(run)


def test_unknown_panel_is_refused() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash._handle_custom_msg({"cmd": "panel", "name": "nope", "open": True, "id": 3}, [])
    ack = dash.tick()["acks"][0]
    assert not ack["ok"]
    assert "'nope'" in ack["message"]
    assert "layers" in ack["message"]
    with pytest.raises(ValueError, match="name: unknown panel"):
        dash.panel("nope")
    dash.close()


@pytest.mark.parametrize(
    ("shape", "given", "expected"),
    [
        ((64,), None, (1, 8, 8, False)),
        ((8, 8), None, (1, 8, 8, False)),
        ((3, 5, 6), None, (3, 5, 6, False)),
        ((5, 6, 3), None, (3, 5, 6, True)),
        ((50,), None, None),  # neither a square nor three
        ((3 * 64,), None, (3, 8, 8, False)),
        ((10,), None, None),
        ((48,), (6, 8), (1, 6, 8, False)),
        ((48,), (7, 7), None),
    ],
)
def test_image_layout(shape: tuple[int, ...], given: Any, expected: Any) -> None:
    assert image_layout(shape, given) == expected


def test_batch_panel_draws_the_batch_with_targets_and_predictions() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.tick()
    dash.panel("batch")
    run.step("batch")
    part = dash.tick()["batch"]
    image = part["image"]
    assert (image["n"], image["c"], image["h"], image["w"]) == (16, 1, 8, 8)
    pixels = base64.b64decode(image["data"])
    assert len(pixels) == 16 * 64
    assert max(pixels) == 255
    assert min(pixels) == 0
    assert part["kind"] == "class"
    assert len(part["items"]) == 16
    pred = run.ctx.pred.argmax(1)[:16].tolist()
    target = run.ctx.target[:16].tolist()
    assert [it["p"] for it in part["items"]] == [str(p) for p in pred]
    assert [it["t"] for it in part["items"]] == [str(t) for t in target]
    assert [it["wrong"] for it in part["items"]] == [
        p != t for p, t in zip(pred, target, strict=True)
    ]
    dash.close()


def test_batch_panel_uses_the_image_shape_given() -> None:
    run = _digits_run()
    dash, _ = _shown(run, image_shape=(4, 16))
    dash.panel("batch")
    run.step("batch")
    image = dash.tick()["batch"]["image"]
    assert (image["h"], image["w"]) == (4, 16)
    with pytest.raises(ValueError, match="image_shape"):
        Dashboard(run, image_shape=(0, 3))
    dash.close()


def test_confusion_matrix_per_epoch_while_the_batch_panel_is_open() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.panel("batch")
    run.step("epoch")
    confusion = dash.tick()["batch"]["confusion"]
    assert set(confusion) == {"train", "valid"}
    counts = torch.tensor(confusion["valid"]["counts"])
    assert confusion["valid"]["epoch"] == 1
    assert counts.shape == (10, 10)
    assert int(counts.sum()) == 32
    assert int(torch.tensor(confusion["train"]["counts"]).sum()) == 96
    assert isinstance(tracker(run, EpochConfusion), EpochConfusion)
    dash.close()


def test_layers_panel_marks_the_origin_of_a_nan() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 8), nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.b(h * torch.inf if x.shape[0] else h)

    run = _digits_run(model=Bad())
    dash, _ = _shown(run)
    dash.panel("layers")
    dash._handle_custom_msg({"cmd": "edit", "field": "nonfinite", "value": True, "id": 4}, [])
    msg = dash.tick()
    assert msg["config"]["nonfinite"] is True
    assert msg["acks"][0]["ok"]
    run.resume()
    assert run.state == "paused"
    assert "b (Linear)" in run.reason
    assert dash.tick()["layers"]["origin"] == {"kind": "output", "name": "b"}
    dash.close()


def test_layers_panel_of_a_compiled_model_shows_and_marks_the_modules_own_names() -> None:
    torch._dynamo.reset()
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    run = _digits_run(model=torch.compile(net, backend="aot_eager"))
    dash, _ = _shown(run)
    dash.panel("layers")
    run.step("batch")  # compiled, no hook in its graph
    assert [r[0] for r in dash.tick()["layers"]["rows"]] == [n for n, _ in net.named_parameters()]
    run.breakpoints.nonfinite = True
    with torch.no_grad():
        net[2].bias[3] = torch.nan
    run.resume()
    assert "output of 2 (Linear)" in run.reason
    assert dash.tick()["layers"]["origin"] == {"kind": "output", "name": "2"}
    dash.close()


def test_a_finished_run_continues_from_the_dashboard_when_max_epochs_is_raised() -> None:
    run = _digits_run(epochs=1)
    dash, _ = _shown(run)
    run.resume()
    status = dash.tick()["status"]
    assert status["state"] == "done"
    back = {"step_back", "find_nan", "find_spike"}  # a finished run can still go back
    assert not any(on for name, on in status["buttons"].items() if name not in back)
    assert all(status["buttons"][name] for name in back)
    dash._handle_custom_msg({"cmd": "edit", "field": "max_epochs", "value": "2", "id": 5}, [])
    status = dash.tick()["status"]
    assert status["start_label"] == "Continue"
    assert status["buttons"]["start"]
    assert status["buttons"]["step_batch"]
    run.breakpoints.add(lw.Event.on_epoch_end)  # the command starts a thread: stop it there
    dash._handle_custom_msg({"cmd": "start", "id": 6}, [])
    assert run.wait(30) == "paused"
    assert run.ctx.epoch == 2
    ack = next(a for a in dash.tick()["acks"] if a["id"] == 6)
    assert ack["ok"]
    assert ack["message"] == "continued"
    dash.close()


def test_continue_without_raising_max_epochs_says_how() -> None:
    run = _digits_run(epochs=1)
    dash, _ = _shown(run)
    run.resume()
    dash._handle_custom_msg({"cmd": "start", "id": 7}, [])
    ack = dash.tick()["acks"][0]
    assert not ack["ok"]
    assert "raise max_epochs first" in ack["message"]
    dash.close()


def test_model_row_keeps_the_last_steps_update_across_ticks() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.tick()
    run.step(lw.Event.on_train_batch_before_step)
    dash.tick()
    run.step(lw.Event.on_train_batch_after_step)
    first = dash.tick()["inspector"]["rows"]["model"]
    dash.tick()  # a second look at the same pause (the 70 ms overwrite of issue 10)
    dash._collector.inspector._t = -1e9
    again = dash._collector.inspector._read(run, running=False)["model"]
    assert "Δw" in first
    assert not first.endswith("Δw 0")
    assert again == first
    dash.close()


def test_highlights_compare_with_the_last_pause() -> None:
    holder: dict[str, Any] = {}

    class TickMidStep(lw.Callback):  # the publisher ticks while the step runs
        def on_train_batch_after_loss(self, ctx: Any) -> None:
            if "dash" in holder:
                inspector = holder["dash"]._collector.inspector
                inspector._t = -1e9
                inspector.part(run, "running", False)

    run = _digits_run()
    run.add_callback(TickMidStep())
    dash, _ = _shown(run)
    dash.tick()
    run.step("batch")
    dash.tick()
    holder["dash"] = dash
    run.step("batch")
    hl = set(dash.tick()["inspector"]["hl"])
    assert {"iter", "input", "target", "pred", "loss", "batch"} <= hl
    dash.close()


def test_an_all_nan_tensor_says_so() -> None:
    assert tensor_summary(torch.full((32, 10), torch.nan)).endswith("· all NaN (320)")
    assert tensor_summary(torch.full((4,), torch.inf)).endswith("· all inf (4)")
    mixed = torch.tensor([torch.nan, torch.inf, -torch.inf])
    assert tensor_summary(mixed).endswith("· all NaN/inf (3)")
    assert "mean" in tensor_summary(torch.tensor([1.0, torch.nan, 3.0]))


def test_layer_tracker_is_the_runs_one() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.panel("layers")
    assert tracker(run, LayerTracker).subscribers == 1
    dash.panel("layers", False)
    assert tracker(run, LayerTracker).subscribers == 0
    dash.close()


def test_skip_at_a_nan_pause_abandons_the_batch_and_goes_on() -> None:
    run = _digits_run(epochs=1)
    dash, _ = _shown(run)
    run.breakpoints.add(lw.Event.on_train_batch_after_loss)
    run.step("batch")
    run.step(lw.Event.on_train_batch_after_loss)  # batch 2, as a NaN pause would stop there
    assert dash.tick()["status"]["buttons"]["skip"]
    weights = [p.detach().clone() for p in run.ctx.model.parameters()]
    run.breakpoints.remove(lw.Event.on_train_batch_after_loss)
    run.breakpoints.add(lw.Event.on_train_batch_begin)
    dash._handle_custom_msg({"cmd": "skip", "id": 8}, [])
    assert run.wait(30) == "paused"
    ack = next(a for a in dash.tick()["acks"] if a["id"] == 8)
    assert ack["ok"], ack
    assert run.ctx.iter == 3  # went on with the next batch
    assert all(torch.equal(w, p) for w, p in zip(weights, run.ctx.model.parameters(), strict=True))
    assert "SkipRestOfBatch" not in _names(run)
    assert engine_of(run.ctx).skipped == [2]  # as run.skip() after an error lists it
    dash.close()


def test_skip_outside_a_batch_is_refused() -> None:
    run = _digits_run(epochs=1)
    dash, _ = _shown(run)
    run.step("batch")  # paused at on_train_batch_end: the batch is over
    assert not dash.tick()["status"]["buttons"]["skip"]
    dash._handle_custom_msg({"cmd": "skip", "id": 9}, [])
    ack = dash.tick()["acks"][0]
    assert not ack["ok"]
    assert "on_train_batch_end" in ack["message"]
    dash.close()


def test_a_pause_reached_between_two_ticks_is_logged() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.tick()
    run.step("batch")
    first = dash.tick()["log"]
    run.step("batch")  # paused, ran, paused again: no tick saw it running
    second = dash.tick()["log"]
    for log in (first, second):
        assert log[-1]["kind"] == "pause"
        assert log[-1]["text"] == "paused: stepped to on_train_batch_end"
    assert second[-1]["where"] == "epoch 1 · batch 2"
    dash.close()


def test_a_resume_that_pauses_again_at_once_logs_its_ack_before_the_pause() -> None:
    # The browser's Resume is applied off the tick's thread; a tick falling between the run
    # pausing again and the ack being queued must not log the pause before "resumed".
    run = _digits_run()
    dash, _ = _shown(run)
    run.step("batch")
    dash.tick()
    collector = dash._collector
    collector.commanding += 1  # as Dashboard._on_msg does around handle_command
    run.step("batch")  # the command's effect: ran and paused again
    early = dash.tick()
    assert not any(e["kind"] == "pause" for e in (early or {}).get("log", []))
    collector.add_ack(Ack(3, True, "resumed"))
    collector.commanding -= 1
    log = dash.tick()["log"]
    kinds = [e["kind"] for e in log]
    assert kinds[0] == "ok"
    assert log[0]["text"] == "resumed"
    assert kinds[-1] == "pause"
    dash.close()


def test_layers_rows_say_inf_and_nan_where_values_are_not_finite() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.panel("layers")
    run.step(lw.Event.on_train_batch_before_step)
    with torch.no_grad():
        run.ctx.model[0].weight[0, 0] = torch.inf
        run.ctx.model[2].weight.grad[0, 0] = torch.nan
    rows = {r[0]: r for r in dash.tick()["layers"]["rows"]}
    assert rows["0.weight"][2] == "inf"
    assert rows["0.weight"][6] == 1
    assert rows["2.weight"][3] == "NaN"
    assert rows["2.bias"][4] is None  # no step recorded yet: not known
    dash.close()


def test_batch_panel_shows_no_stale_prediction_and_says_nan() -> None:
    run = _digits_run()
    dash, _ = _shown(run)
    dash.panel("batch")
    run.step("batch")
    run.step(lw.Event.on_train_batch_begin)  # ctx.pred still holds the last batch's
    items = dash.tick()["batch"]["items"]
    assert {it["p"] for it in items} == {None}
    run.step(lw.Event.on_train_batch_after_pred)
    with torch.no_grad():
        run.ctx.pred[0, 3] = torch.nan
    dash._collector.panels["batch"]._n = -1  # look again at this pause
    items = dash.tick()["batch"]["items"]
    assert items[0]["p"] == "NaN"
    assert items[0]["wrong"]
    assert items[1]["p"] != "NaN"
    dash.close()


def _layers_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Layers panel's clock, ``[now]``: set it to move time."""
    from luzwidget.widgets import layers_panel

    now = [100.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(layers_panel, "time", Clock)
    return now


def _free_run_ticking(
    run: lw.Run, dash: Dashboard, monkeypatch: pytest.MonkeyPatch, now: list[float], step: float
) -> list[int]:
    """``run.resume()`` with the dashboard ticking after each batch, its clock advancing
    ``step`` seconds per batch; returns the batches the tracker copied the weights at."""
    copied: list[int] = []
    copy = LayerTracker._copy

    def counting(self: LayerTracker, ctx: Any) -> None:
        copied.append(ctx.iter)
        copy(self, ctx)

    monkeypatch.setattr(LayerTracker, "_copy", counting)

    class Tick(lw.Callback):
        def on_train_batch_end(self, ctx: Any) -> None:
            now[0] += step
            dash.tick()

    run.add_callback(Tick())
    run.resume()
    return copied


def test_a_free_run_copies_the_weights_only_for_the_layers_panels_readings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from luzwidget.widgets.inspector import INSPECT_EVERY_S

    run = _digits_run(epochs=10)
    dash, _ = _shown(run)
    now = _layers_clock(monkeypatch)
    _open(dash, "layers")
    dash.tick()
    copied = _free_run_ticking(run, dash, monkeypatch, now, INSPECT_EVERY_S / 10)
    n = 10 * 6  # 96 items, batches of 16
    assert run.state == "done"
    assert 3 <= len(copied) <= n // 4  # one per reading (one every 10 batches), not n
    dash.tick()
    part = dash._collector.panels["layers"].sent  # what the panel shows after the run
    assert part is not None
    rows = {r[0]: dict(zip(part["fields"], r, strict=True)) for r in part["rows"]}
    epoch, batch = part["update_of"]
    assert 1 <= epoch <= 10
    assert 1 <= batch <= 6
    assert isinstance(rows["0.weight"]["update_norm"], float)  # known and finite
    assert rows["0.weight"]["update_norm"] > 0
    dash.close()


def test_a_pause_before_a_step_after_a_free_run_still_shows_that_steps_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = _digits_run(epochs=10, lr=0.1)
    dash, _ = _shown(run)
    now = _layers_clock(monkeypatch)
    _open(dash, "layers")
    dash.tick()
    run.breakpoints.add(
        lambda ctx: ctx.epoch == 5 and ctx.iter == 3, at=lw.Event.on_train_batch_before_step
    )
    copied = _free_run_ticking(run, dash, monkeypatch, now, 0.001)  # no reading due since the first
    assert run.state == "paused"
    assert copied == []  # no reading was due: nothing asked
    before = dash.tick()["layers"]
    assert copied == [3]  # copied at the pause: the free run had not asked for it
    grad = next(r for r in before["rows"] if r[0] == "0.weight")[3]
    run.step(lw.Event.on_train_batch_after_step)
    after = dash.tick()["layers"]
    assert after["update_of"] == [5, 3]
    update = next(r for r in after["rows"] if r[0] == "0.weight")[4]
    assert update == pytest.approx(0.1 * grad, rel=1e-4)  # plain SGD, this very step
    dash.close()


def test_confusion_counts_each_pass_in_one_buffer_on_the_device() -> None:
    """One (k*k,) buffer per pass, added to in place: no new tensor (and, on CUDA, no
    host sync as a ``bincount`` has) per batch; the counts are exact."""
    run = _digits_run()
    dash, _ = _shown(run)
    dash.panel("batch")
    confusion = tracker(run, EpochConfusion)
    buffers: list[int] = []
    pairs: list[torch.Tensor] = []

    class Look(lw.Callback):
        weight = 2_000  # after EpochConfusion

        def on_train_batch_end(self, ctx: Any) -> None:
            if ctx.training:
                buffers.append(confusion._counts.data_ptr())
                pairs.append(ctx.target * 10 + ctx.pred.argmax(1))

    run.add_callback(Look())
    run.step("epoch")
    assert len(buffers) == 6
    assert len(set(buffers)) == 1
    expected = torch.bincount(torch.cat(pairs), minlength=100).reshape(10, 10)
    assert torch.equal(confusion.done["train"][1], expected)
    dash.close()


def test_while_a_run_trains_in_its_thread_only_that_thread_reads_the_layers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading gradients while backward and zero_grad replace them crashed the process
    (a segfault in the benchmark): the driving thread computes the table for the panel."""
    import threading
    import time

    from luzwidget.insight import layers as layers_module
    from luzwidget.widgets import layers_panel

    run = _digits_run(epochs=30)
    dash, _ = _shown(run)
    now = _layers_clock(monkeypatch)
    _open(dash, "layers")
    readers: list[str] = []
    real = layers_module.layers

    def reading(*args: Any, **kwargs: Any) -> Any:
        if run.state == "running":
            readers.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(layers_module, "layers", reading)
    monkeypatch.setattr(layers_panel, "layers", reading)
    shown: list[Any] = []
    panel = dash._collector.panels["layers"]
    run.start()
    while run.state in ("ready", "running"):
        now[0] += 1.0  # a reading due at every tick
        part = panel.part(run.state, False)
        time.sleep(0.001)
        if part and part.get("open"):
            shown.append(part["update_of"])
    run.wait()
    assert run.state == "done"
    assert readers
    assert set(readers) == {"luzwidget-run"}
    assert any(shown)
    dash.close()
