"""js/src/pace.js (in Node): the page's drawing budget stretches the dashboard's clocks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PACE = Path(__file__).resolve().parents[2] / "js" / "src" / "pace.js"

# A page that redraws on a clock of `base` ms (stretched by the pace), each redraw costing
# `cost` ms of script, for `seconds`; then idle for `idle` seconds. Prints the stretch and
# the share of time spent drawing, second by second.
_SIMULATE = """
import { createPace } from %s;
const [base, cost, seconds, idle, budget] = JSON.parse(process.argv[1]);
let t = 0;
const pace = createPace({ now: () => t, frame: () => {}, budget });
const out = [];
let next = 0, spentThisSecond = 0, second = 0;
const end = (seconds + idle) * 1000;
while (t < end) {
  if (t >= next && t < seconds * 1000) {
    const t0 = t;
    t += cost;
    pace.spent(t0);
    spentThisSecond += cost;
    next = t0 + pace.every(base);
  } else {
    t += 1;
  }
  if (t >= (second + 1) * 1000) {
    out.push([pace.stretch(), spentThisSecond / 1000]);
    spentThisSecond = 0;
    second += 1;
  }
}
console.log(JSON.stringify(out));
"""


def _simulate(base: float, cost: float, seconds: int, idle: int, budget: float) -> Any:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            _SIMULATE % json.dumps(PACE.as_uri()),
            json.dumps([base, cost, seconds, idle, budget]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_a_light_page_keeps_its_own_pace() -> None:
    # 2 ms every 200 ms is 1 %: under a 4 % budget nothing is stretched
    seconds = _simulate(base=200, cost=2, seconds=10, idle=0, budget=0.04)
    assert [stretch for stretch, _ in seconds] == [1] * 10
    assert all(0.009 <= share <= 0.011 for _, share in seconds[1:])


def test_a_heavy_page_is_slowed_down_to_its_budget_and_comes_back_when_idle() -> None:
    # 24 ms every 200 ms is 12 %: three times the budget
    seconds = _simulate(base=200, cost=24, seconds=20, idle=5, budget=0.04)
    drawing, idle = seconds[:20], seconds[20:]
    assert drawing[0][1] > 0.1  # the first second at the clock's own pace
    settled = drawing[-8:]  # about three times slower, on budget
    assert all(2.6 <= stretch <= 3.6 for stretch, _ in settled)
    assert 0.03 <= sum(share for _, share in settled) / len(settled) <= 0.045
    assert idle[-1][0] == 1  # nothing drawn for 3 s: the clocks' own pace again


def test_the_stretch_has_a_ceiling() -> None:
    # 100 ms every 200 ms is 50 %: the budget would ask for 12.5x, the ceiling is 5x
    seconds = _simulate(base=200, cost=100, seconds=20, idle=0, budget=0.04)
    assert max(stretch for stretch, _ in seconds) == 5
    last = seconds[-12:]
    assert 0.09 <= sum(share for _, share in last) / len(last) <= 0.11  # 100 ms every 1 s
