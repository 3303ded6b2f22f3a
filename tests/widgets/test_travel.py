"""The dashboard's time-travel part: timeline, rewind redraws, branches overlaid and driven."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from luzwidget.widgets.stream import DownsampledSeries
from luzwidget.widgets.travel import cut_series
from tests.widgets.test_dashboard import _run, _shown

# 96 samples, batches of 16: 6 training batches an epoch


def _cmd(dash: Any, **msg: Any) -> dict[str, Any]:
    dash._handle_custom_msg({"cmd": "travel", "id": 7, **msg}, [])
    out = dash.tick()
    assert out is not None
    (ack,) = [a for a in out.get("acks", []) if a["id"] == 7]
    return {"msg": out, "ack": ack}


def test_the_timeline_lists_snapshots_with_their_place_on_the_stream() -> None:
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch")
    run.step("batch", n=2)
    part = dash.tick()["travel"]
    assert part["timeline"] == {
        "v": 1,
        "reset": True,
        "add": [
            [0, 0, 0, "s", "", 0, ""],
            [1, 1, 0, "e", "", 6, ""],
            [2, 1, 2, "i", "", 8, "on_train_batch_end"],
        ],
        "drop": [],
    }
    assert [(m["name"], m["this"]) for m in part["family"]] == [("main", True)]
    dash.close()


def test_a_rewind_from_the_dashboard_cuts_the_stream_and_the_records() -> None:
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch", n=2)
    dash.tick()
    assert dash._collector.series["loss"].x[-1] == 12
    out = _cmd(dash, action="rewind", snapshot=1)  # the end of epoch 1
    assert out["ack"] == {"id": 7, "ok": True, "message": "rewound to epoch 1"}
    snap = out["msg"]
    assert snap["type"] == "snapshot"  # the views redraw from it
    assert max(snap["stream"]["loss"]["x"]) <= 6
    assert {r[2] for r in snap["records"]} == {1}  # epoch 2's metrics are gone
    assert dash._feed.n_train == 6
    run.step("batch")
    dash.tick()
    assert dash._collector.series["loss"].x[-1] == 7  # the stream goes on from there
    dash.close()


def test_rewind_by_batches_keeps_the_points_before_the_target() -> None:
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch")
    run.step("batch", n=4)
    dash.tick()
    run.rewind(batches=3)  # from Python: the dashboard follows too
    snap = dash.tick()
    assert snap["type"] == "snapshot"
    assert snap["stream"]["loss"]["x"][-1] == 7
    dash.close()


def test_a_branch_with_a_new_lr_is_driven_and_its_parent_overlaid() -> None:
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch")
    dash.tick()
    assert _cmd(dash, action="snapshot")["ack"]["message"].startswith("snapshot taken")
    assert run.snapshots[-1].label == "marked"
    out = _cmd(dash, action="branch", lr="0.5")
    assert out["ack"]["ok"], out["ack"]
    assert "branch 1 (lr 0.5)" in out["ack"]["message"]
    branch = dash.run
    assert branch is not run
    assert branch.ctx.optimizers["opt"].param_groups[0]["lr"] == 0.5
    family = out["msg"]["travel"]["family"]
    assert [(m["name"], m["this"], m["label"]) for m in family] == [
        ("main", False, "the first run"),
        ("branch 1", True, "lr 0.5 from epoch 1"),
    ]
    assert family[0]["curves"]["loss"]["train"][0][0] == 1  # the parent's curve, overlaid
    assert family[1]["curves"] == {}  # the branch's own are the plots'
    assert {r[2] for r in out["msg"]["records"]} == {1}  # its epoch before the branch point
    branch.step("epoch")
    assert dash.tick()["type"] == "update"
    back = _cmd(dash, action="drive", run="main")
    assert back["ack"]["message"] == "the controls drive main"
    assert dash.run is run
    assert back["msg"]["type"] == "snapshot"
    assert back["msg"]["travel"]["family"][1]["curves"]["loss"]["train"][-1][0] == 2
    assert max(back["msg"]["stream"]["loss"]["x"]) == 6  # main's stream, kept meanwhile
    assert back["msg"]["travel"]["timeline"]["add"][-1][4] == "marked"
    dash.close()
    for shown in (run, branch):  # closing detaches from every run it showed
        assert all(type(cb).__name__ != "DashboardFeed" for cb in shown.ctx.callbacks)


def test_travel_refusals_say_what_was_expected() -> None:
    run = _run()
    dash, _ = _shown(run)
    run.step("epoch")
    cases = {
        "lr": ({"action": "branch", "lr": "fast"}, "is not a number"),
        "snapshot": ({"action": "rewind", "snapshot": 9}, "no snapshot number 9"),
        "action": ({"action": "fly"}, "expected snapshot, rewind, branch or drive"),
        "run": ({"action": "drive", "run": "branch 7"}, "no run 'branch 7'"),
    }
    for msg, said in cases.values():
        ack = _cmd(dash, **msg)["ack"]
        assert not ack["ok"]
        assert said in ack["message"]
    assert dash.run is run
    dash.close()


def test_cut_series_keeps_the_points_up_to_x_and_goes_on_from_there() -> None:
    s = DownsampledSeries(capacity=8)
    s.add(range(1, 21), [float(i) for i in range(1, 21)])
    cut = cut_series(s, 10)
    assert cut.x
    assert max(cut.x) <= 10
    assert cut.halvings == s.halvings
    cut.add([11], [11.0])
    assert cut.count == 11


OVERLAY = Path(__file__).resolve().parents[2] / "js" / "src" / "parts" / "overlay.js"

# What overlay.js makes of a travel part (stdin, JSON: {travel, marks, picked}) per panel.
_OVERLAY = """
import { markerShapes, overlayTraces, snapshotMarkers } from %s;
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { travel, marks, picked } = JSON.parse(chunks.join(""));
const out = {};
for (const key of ["__stream", "loss"]) {
  const m = snapshotMarkers(marks, picked, key);
  out[key] = { m, drawn: markerShapes(m, { muted: "#777", accent: "#00f" }),
               traces: overlayTraces(travel, key, 1).map((t) => [t.name, t.mode, t.x, t.meta]) };
}
console.log(JSON.stringify(out));
"""


def _overlay(
    travel: dict[str, Any], marks: list[list[Any]] | None = None, picked: int | None = None
) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    marks = travel.get("timeline", {}).get("add", []) if marks is None else marks
    done = subprocess.run(
        [node, "--input-type=module", "-e", _OVERLAY % json.dumps(OVERLAY.as_uri())],
        input=json.dumps({"travel": travel, "marks": marks, "picked": picked}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_the_plots_mark_only_the_labelled_and_the_picked_snapshots() -> None:
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch")
    run.snapshot("warm")  # the end of epoch 1, labelled
    run.step("epoch")
    drawn = _overlay(dash.tick()["travel"])
    stream, loss = drawn["__stream"], drawn["loss"]
    # the automatic snapshots (start, epoch ends) are not drawn: the timeline shows them
    assert stream["m"] == {"named": [[6, "warm"]], "picked": None}
    assert loss["m"] == {"named": [[1, "warm"]], "picked": None}
    (path,) = stream["drawn"]["shapes"]
    assert path["path"] == "M6,0V1"  # every named marker: one SVG element
    assert (path["xref"], path["yref"], path["line"]["dash"]) == ("x", "paper", "dot")
    assert [a["text"] for a in stream["drawn"]["annotations"]] == ["warm"]
    assert stream["traces"] == loss["traces"] == []  # one run: nothing overlaid
    assert dash.tick() is None  # nothing new: nothing sent (not the timeline again)
    picked = _overlay({"family": []}, _timeline_marks(dash), picked=3)  # epoch 2's end
    assert picked["__stream"]["m"] == {"named": [[6, "warm"]], "picked": 12}
    line = picked["loss"]["drawn"]["shapes"][-1]
    assert (line["type"], line["x0"], line["line"]["color"]) == ("line", 2, "#00f")
    out = _cmd(dash, action="branch", lr="0.5")  # from the latest snapshot: end of epoch 2
    assert out["ack"]["ok"], out["ack"]
    loss = _overlay(out["msg"]["travel"])["loss"]
    # the parent's train and valid losses, without markers past 1 point (markersMax here)
    assert loss["traces"] == [
        ["main · train", "lines", [1, 2], "lw-overlay"],
        ["main · valid", "lines", [1, 2], "lw-overlay"],
    ]
    assert _overlay(out["msg"]["travel"])["__stream"]["traces"] == []  # never on the stream
    dash.close()


def _timeline_marks(dash: Any) -> list[list[Any]]:
    travel = dash._collector.travel
    return list(travel.timeline.shown(travel.state.store.list()).values())


def test_a_panel_without_snapshots_gets_no_marker_shape() -> None:
    assert _overlay({"family": []}, [])["loss"] == {
        "m": {"named": [], "picked": None},
        "drawn": {"shapes": [], "annotations": []},
        "traces": [],
    }
