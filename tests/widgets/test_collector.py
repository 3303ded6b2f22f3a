"""Collector: lr-edit markers for the loss plot, in deltas and in snapshots."""

from __future__ import annotations

from luzwidget.widgets import Dashboard
from tests.widgets.test_traffic import FastRun, _capture


def test_an_accepted_lr_edit_marks_the_batch_a_refused_one_does_not() -> None:
    run = FastRun(n_batches=10)
    dash = Dashboard(run)
    sent = _capture(dash)
    dash._handle_custom_msg({"cmd": "hello"}, [])
    dash.tick()
    run.pump(7)
    dash._handle_custom_msg({"cmd": "edit", "field": "lr", "value": "0.5", "id": 1}, [])
    dash._handle_custom_msg({"cmd": "edit", "field": "lr", "value": "abc", "id": 2}, [])
    dash.tick()
    assert sent[-1]["marks"] == [[7, "lr 0.5"]]
    run.pump(3)
    dash.tick()
    assert [m["marks"] for m in sent if m.get("marks")] == [[[7, "lr 0.5"]]]  # sent once
    dash._handle_custom_msg({"cmd": "hello"}, [])  # a reload: the snapshot has them all
    dash.tick()
    assert sent[-1]["type"] == "snapshot"
    assert sent[-1]["marks"] == [[7, "lr 0.5"]]
    dash.close()
