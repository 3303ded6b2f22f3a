"""js/src/parts/thin.js (in Node): the loss stream drawn with about a point per pixel."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

THIN = Path(__file__).resolve().parents[2] / "js" / "src" / "parts" / "thin.js"

_CALL = """
import * as thin from %s;
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const [fn, x, y, budget] = JSON.parse(chunks.join(""));
console.log(JSON.stringify(thin[fn](x, y, budget)));
"""


def _thin(fn: str, x: list[float], y: list[float | None], budget: float) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node")
    done = subprocess.run(
        [node, "--input-type=module", "-e", _CALL % json.dumps(THIN.as_uri())],
        input=json.dumps([fn, x, y, budget]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_min_max_keeps_every_spike_and_the_latest_batch_in_a_point_per_pixel() -> None:
    x = list(range(1, 2001))
    y: list[float | None] = [1.0 + (i % 7) * 0.01 for i in range(2000)]
    y[1233] = 50.0  # one spike among 2,000 batches
    y[17] = -3.0  # and one dip
    out = _thin("minMax", x, y, 640)
    assert len(out["x"]) <= 641  # 320 buckets, two points each, and the last
    assert max(v for v in out["y"] if v is not None) == 50.0
    assert min(v for v in out["y"] if v is not None) == -3.0
    assert 1234 in out["x"]  # where the spike was, not moved
    assert out["x"][-1] == 2000  # the line reaches the latest batch
    assert out["x"] == sorted(out["x"])


def test_min_max_leaves_a_short_line_as_it_is_and_a_bucket_of_nulls_as_a_gap() -> None:
    assert _thin("minMax", [1, 2, 3], [3.0, None, 1.0], 640) == {
        "x": [1, 2, 3],
        "y": [3.0, None, 1.0],
    }
    y: list[float | None] = [1.0] * 100
    y[40:60] = [None] * 20  # two whole buckets of 10
    out = _thin("minMax", list(range(100)), y, 20)
    assert out["y"].count(None) == 2
    assert all(v == 1.0 for v in out["y"] if v is not None)


def test_bucket_ends_thins_a_smooth_line_from_first_to_last() -> None:
    x = list(range(2000))
    y = [float(i) for i in range(2000)]
    out = _thin("bucketEnds", x, y, 320)
    assert len(out["x"]) == 320
    assert (out["x"][0], out["x"][-1]) == (0, 1999)
    assert out["y"] == [float(v) for v in out["x"]]  # points kept, not averaged
    assert _thin("bucketEnds", [0, 1], [5.0, 6.0], 320) == {"x": [0, 1], "y": [5.0, 6.0]}
