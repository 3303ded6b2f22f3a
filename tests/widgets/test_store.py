"""js/src/store.js fed the kernel's real messages (in Node): it keeps what the kernel keeps.

The kernel alone thins the loss stream (luzwidget/widgets/stream.py); the store follows its
``halve`` word with the same rule. So after any run, the browser's stream is the kernel's.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from luzwidget.widgets import Dashboard
from tests.widgets.test_traffic import FastRun, _capture

STORE = Path(__file__).resolve().parents[2] / "js" / "src" / "store.js"

# Feed the messages (stdin, JSON list) to a store, print its state.
_FEED = """
import { createStore } from %s;
let handler = null;
const model = { on: (_, fn) => { handler = fn; }, off() {}, send() {} };
const store = createStore(model);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
for (const msg of JSON.parse(chunks.join(""))) handler(msg);
const { stream, log, logMax } = store.state;
console.log(JSON.stringify({ series: stream.series, log: log.length, logMax }));
"""


def _feed(messages: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    script = _FEED % json.dumps(STORE.as_uri())
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout.splitlines()[-1])  # after the store's console.info lines


def _close(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None)
        or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-4))
        for x, y in zip(a, b, strict=True)
    )


def test_the_browser_stream_is_the_kernels_after_many_halvings() -> None:
    run = FastRun(n_batches=7)
    dash = Dashboard(run)
    dash._collector.capacity = 16  # thin often: 3,000 batches halve the stream 7 times
    sent = _capture(dash)
    dash._handle_custom_msg({"cmd": "hello"}, [])
    dash.tick()
    run.state = "running"
    for i in range(300):
        run.pump(1 + i % 17)  # ticks of uneven size: odd and even lengths at each halving
        if i % 50 == 49:
            run.state = "paused"  # a pause flushes the partial bucket
            dash.tick()
            run.state = "running"
        dash.tick()
    series = dash._collector.series["loss"]
    assert series.halvings >= 5
    assert all(m["stream"]["loss"].get("halve", 0) <= 1 for m in sent[1:] if "stream" in m)
    browser = _feed(sent)["series"]["loss"]
    kernel = series.points()
    assert browser["x"] == kernel["x"]  # the same points, none kept twice or dropped
    assert _close(browser["y"], kernel["y"])
    assert _close(browser["ema"], kernel["ema"])
    dash.close()


def test_the_log_keeps_as_many_entries_as_the_snapshot_says() -> None:
    run = FastRun()
    dash = Dashboard(run)
    sent = _capture(dash)
    dash._handle_custom_msg({"cmd": "hello"}, [])
    dash.tick()
    for i in range(400):
        dash._handle_custom_msg({"cmd": "edit", "field": "lr", "value": "x", "id": i}, [])
    dash.tick()
    state = _feed(sent)
    assert state["logMax"] == sent[0]["log_max"] == 300
    assert state["log"] == 300
    dash.close()
