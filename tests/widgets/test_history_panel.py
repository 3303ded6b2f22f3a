"""The "Layers over time" panel (widgets/history_panel.py): closed costs nothing, open sends
each stepped batch's column once (deltas), a new view everything, a pick its histograms."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.insight.history import BINS, HistoryTracker
from luzwidget.widgets import Dashboard
from tests.widgets.test_dashboard import _shown


def _run(epochs: int = 2) -> lw.Run:
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = torch.randint(0, 3, (64,))
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1).run(
        (x, y), epochs=epochs, verbose=False, dataloader_options={"batch_size": 16}
    )


def _cmd(dash: Dashboard, **msg: Any) -> None:
    dash._handle_custom_msg({"cmd": "panel", "name": "history", "id": 3, **msg}, [])


def _tracked(run: lw.Run) -> bool:
    return any(isinstance(cb, HistoryTracker) for cb in run.ctx.callbacks)


def test_closed_panel_sends_closed_once_and_the_run_records_nothing() -> None:
    run = _run()
    dash, _ = _shown(run)
    assert dash.tick()["history"] == {"open": False}
    run.step("batch", n=2)
    assert "history" not in (dash.tick() or {})
    assert not _tracked(run)


def test_open_panel_sends_each_stepped_column_once_then_a_new_view_everything() -> None:
    run = _run()
    dash, _ = _shown(run)
    dash.tick()
    _cmd(dash, open=True)
    assert _tracked(run)
    run.step("batch")
    part = dash.tick()["history"]
    assert part["open"]
    assert part["reset"]
    assert part["params"] == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert part["dead"] == ["1"]
    assert part["sat"] == ["3"]
    assert part["pick"] == "acts|0"  # the first hidden module's outputs
    assert part["choices"]["acts"] == ["0", "1", "2", "3", "4", "(model)"]
    assert len(part["edges"]) == 2
    [col] = part["cols"]
    __seq, step, epoch, batch, ratios, dead, sat, counts = col
    assert (step, epoch, batch) == (1, 1, 1)
    frame = run.layer_history()
    expected = frame[frame.kind == "parameter"].update_ratio.tolist()
    assert ratios == expected
    assert dead == frame[frame.name == "1"].dead_frac.tolist()
    assert sat == frame[frame.name == "3"].saturated_frac.tolist()
    assert len(counts) == BINS
    assert sum(counts) == 16 * 8
    assert "history" not in (dash.tick() or {})  # nothing new: nothing sent
    run.step("batch", n=2)
    part = dash.tick()["history"]
    assert not part["reset"]
    assert [c[1] for c in part["cols"]] == [2, 3]  # only the new ones
    dash._handle_custom_msg({"cmd": "hello"}, [])  # a new view: a snapshot
    full = dash.tick()
    assert full["type"] == "snapshot"
    assert [c[1] for c in full["history"]["cols"]] == [1, 2, 3]
    assert full["history"]["reset"]


def test_a_pick_resends_that_series_and_a_bad_pick_is_refused() -> None:
    run = _run()
    dash, sent = _shown(run)
    dash.tick()
    _cmd(dash, open=True)
    run.step("batch", n=2)
    dash.tick()
    _cmd(dash, open=True, pick="weights|2.weight")
    part = dash.tick()["history"]
    assert part["pick"] == "weights|2.weight"
    assert part["reset"]
    assert [c[1] for c in part["cols"]] == [1, 2]
    assert all(sum(c[7]) == 64 for c in part["cols"])  # 8x8 weights
    _cmd(dash, open=True, pick="outputs|2")
    acks = [a for m in sent for a in m.get("acks", [])]
    acks += list((dash.tick() or {}).get("acks", []))
    assert acks
    assert not acks[-1]["ok"]
    assert "what in" in acks[-1]["message"]


def test_closing_the_panel_takes_the_tracker_out() -> None:
    run = _run()
    dash, _ = _shown(run)
    dash.tick()
    _cmd(dash, open=True)
    run.step("batch")
    assert dash.tick()["history"]["open"]
    _cmd(dash, open=False)
    run.step("batch")
    assert not _tracked(run)
    assert dash.tick()["history"] == {"open": False}


_FEED = """
import { createStore } from %s;
let handler = null;
const model = { on: (_, fn) => { handler = fn; }, off() {}, send() {} };
const store = createStore(model);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
for (const msg of JSON.parse(chunks.join(""))) handler(msg);
console.log(JSON.stringify(store.state.history));
"""


def test_the_browser_store_keeps_every_column_the_kernel_sent_once() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    run = _run()
    dash, sent = _shown(run)
    dash.tick()
    _cmd(dash, open=True)
    for _ in range(3):
        run.step("batch")
        dash.tick()
    store = Path(__file__).resolve().parents[2] / "js" / "src" / "store.js"
    done = subprocess.run(
        [node, "--input-type=module", "-e", _FEED % json.dumps(store.as_uri())],
        input=json.dumps(sent),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    held = json.loads(done.stdout.splitlines()[-1])
    assert [c[1] for c in held["cols"]] == [1, 2, 3]
    assert held["pick"] == "acts|0"
