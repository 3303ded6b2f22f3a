"""The time-travel timeline's data: one mark per place, distinct names, deltas, a bound."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from luzwidget.storage.snapstore import Snapshot
from luzwidget.widgets.timeline import TIMELINE_MAX, Timeline
from tests.widgets.test_dashboard import _run, _shown

TIMELINE_JS = Path(__file__).resolve().parents[2] / "js" / "src" / "parts" / "timeline.js"


def _names(marks: list[list[Any]]) -> list[str]:
    """What timeline.js names each mark (snapName)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    script = (
        f"import {{ snapName }} from {json.dumps(TIMELINE_JS.as_uri())};"
        "let s = ''; for await (const c of process.stdin) s += c;"
        "console.log(JSON.stringify(JSON.parse(s).map(snapName)));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(marks),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout))


def test_one_mark_per_place_and_a_distinct_name_for_each() -> None:
    # Stepping event by event inside batch 3 made three snapshots named "e2·b3" (each
    # pause takes one); Snapshot clicked there made a fourth, of the same place as the last.
    run = _run(epochs=3)
    dash, _ = _shown(run)
    run.step("epoch")
    run.step("batch", n=2)
    run.step()
    run.step()
    run.step()
    run.snapshot("mine")
    assert len(run.snapshots) == 7
    add = dash.tick()["travel"]["timeline"]["add"]
    assert add == [
        [0, 0, 0, "s", "", 0, ""],
        [1, 1, 0, "e", "", 6, ""],
        [2, 1, 2, "i", "", 8, "on_train_batch_end"],
        [3, 1, 3, "i", "", 8, "on_train_batch_begin"],
        [4, 1, 3, "i", "", 8, "on_train_batch_after_pred"],
        [6, 1, 3, "i", "mine", 8, "on_train_batch_after_loss"],  # not number 5: same place
    ]
    assert _names(add) == [
        "start",
        "e1",
        "e2·b2",
        "e2·b3·begin",
        "e2·b3·after pred",
        "e2·b3·after loss",
    ]
    # The dashboard's number 6 is the store's 7th snapshot: Rewind goes to the labelled one.
    dash._handle_custom_msg({"cmd": "travel", "action": "rewind", "snapshot": 6, "id": 1}, [])
    assert run.ctx.iter == 3
    dash.close()


def test_a_tick_sends_only_the_new_snapshots() -> None:
    run = _run(epochs=4)
    dash, _ = _shown(run)
    run.step("epoch")
    first = dash.tick()["travel"]["timeline"]
    assert (first["reset"], [m[0] for m in first["add"]]) == (True, [0, 1])
    assert dash.tick() is None  # nothing new: the travel part is not sent again
    run.step("epoch")
    delta = dash.tick()["travel"]["timeline"]
    assert delta == {"v": 2, "reset": False, "add": [[2, 2, 0, "e", "", 12, ""]], "drop": []}
    dash._want_snapshot = True  # a new view: all of it
    full = dash.tick()["travel"]["timeline"]
    assert (full["reset"], [m[0] for m in full["add"]]) == (True, [0, 1, 2])
    dash.close()


def _snap(epoch: int, label: str | None = None) -> Snapshot:
    return Snapshot(epoch, 0, label, 0, "on_epoch_end", "epoch_end", batches=10 * epoch)


def test_numbers_stay_when_the_store_drops_snapshots() -> None:
    line = Timeline(offset=0)
    snaps = [_snap(e) for e in range(5)]
    assert [m[0] for m in line.delta(snaps, full=True)["add"]] == [0, 1, 2, 3, 4]
    kept = [snaps[0], snaps[3], snaps[4], _snap(5)]  # two evicted, one new
    delta = line.delta(kept, full=False)
    assert (delta["add"], delta["drop"]) == ([[5, 5, 0, "e", "", 50, ""]], [1, 2])
    assert line.index(3, kept) == 1  # number 3 is the store's second snapshot now
    assert line.index(9, kept) == 9  # not known: left for the command table to refuse


def test_a_thousand_snapshots_are_thinned_to_a_bounded_message() -> None:
    line = Timeline(offset=0)
    snaps = [_snap(e, "lr cut" if e == 333 else None) for e in range(1001)]
    full = line.delta(snaps, full=True)
    numbers = [m[0] for m in full["add"]]
    assert len(numbers) <= TIMELINE_MAX
    assert numbers[:3] == [0, 4, 8]  # every 4th unlabelled one
    assert 333 in numbers  # the labelled one, always
    assert numbers[-1] == 1000  # the latest, always
    assert len(json.dumps(full)) < 10_000
    snaps.append(_snap(1001))
    more = line.delta(snaps, full=False)  # the next epoch: a few bytes
    assert more["add"] == [[1001, 1001, 0, "e", "", 10010, ""]]
    assert more["drop"] == []  # 1000 is a 4th
    after = line.delta([*snaps, _snap(1002)], full=False)
    assert (after["add"][0][0], after["drop"]) == (1002, [1001])  # 1001: no longer the latest
    assert len(json.dumps(more)) < 100
