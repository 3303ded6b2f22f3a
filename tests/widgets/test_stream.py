"""The bounded loss stream, and the one-line summaries of the inspector."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from luzwidget.core.summaries import fmt_number, summarize, tensor_summary
from luzwidget.widgets.stream import DownsampledSeries, halve, json_points, stream_delta


def test_history_stays_bounded_and_uniform() -> None:
    s = DownsampledSeries(capacity=100)
    emitted = 0
    for start in range(1, 100_001, 250):
        xs = list(range(start, start + 250))
        out = s.add(xs, [float(x) for x in xs])
        emitted += len(out[0])
        assert len(s) <= 100
    assert s.bucket == 1024  # 100,000 / 1024 < 100 points
    widths = {round(b - a, 6) for a, b in zip(s.x, s.x[1:], strict=False)}
    assert widths == {1024.0}  # every point covers the same number of batches
    assert s.y == pytest.approx(s.x)  # y == x here, so each bucket's mean y is its mean x
    assert emitted < 3000  # what went to the browser over 100,000 batches


def test_ema_is_bias_corrected() -> None:
    s = DownsampledSeries(beta=0.9)
    s.add([1, 2, 3], [5.0, 5.0, 5.0])
    assert s.ema == pytest.approx([5.0, 5.0, 5.0])
    s.add([4], [15.0])
    avg = 0.0
    for i, y in enumerate([5.0, 5.0, 5.0, 15.0], start=1):
        avg = 0.9 * avg + 0.1 * y
        expected = avg / (1 - 0.9**i)
    assert s.last_ema == pytest.approx(expected)


def test_nonfinite_losses_become_gaps_not_poison() -> None:
    s = DownsampledSeries()
    s.add([1, 2, 3], [1.0, math.nan, 2.0])
    pts = s.points()
    assert pts["y"] == [1.0, None, 2.0]
    assert all(v is not None and math.isfinite(v) for v in pts["ema"])
    assert s.last == 2.0


def test_flush_emits_a_partial_bucket() -> None:
    s = DownsampledSeries(capacity=4)
    s.add(range(1, 11), [1.0] * 10)  # bucket grows to 2 or more; a remainder waits
    before = len(s)
    x, _, _ = s.flush()
    assert len(s) == before + len(x)
    assert s.flush() == ([], [], [])


def test_json_points_are_compact() -> None:
    pts = json_points(([1.0, 2.5], [0.123456789, math.inf], [0.1, 0.2]))
    assert pts == {"x": [1, 2.5], "y": [0.123457, None], "ema": [0.1, 0.2]}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.31234, "0.3123"),
        (1e-5, "1e-05"),
        (12345, "12,345"),
        (math.nan, "NaN"),
        (-math.inf, "-inf"),
        (True, "True"),
        (2.0e6, "2e+06"),
    ],
)
def test_fmt_number(value: object, text: str) -> None:
    assert fmt_number(value) == text


def test_tensor_summary_counts_nan_and_inf() -> None:
    t = torch.tensor([[1.0, math.nan], [math.inf, 3.0]])
    assert tensor_summary(t) == "float32[2, 2] cpu · mean 2 · std 1.414 · NaN 1 · inf 1"
    assert tensor_summary(torch.tensor(0.5)) == "float32[] cpu · 0.5"
    assert tensor_summary(torch.zeros(3, dtype=torch.bool)) == "bool[3] cpu · true 0"
    assert tensor_summary(torch.ones(2, 2), stats=False) == "float32[2, 2] cpu"


def test_summaries_of_fields() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    assert summarize("model", model) == "Sequential · 21 params · train mode"
    assert summarize("loss_fn", nn.MSELoss()) == "MSELoss()"
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert summarize("optimizers", {"opt": opt}) == "{opt: SGD lr=0.1 momentum=0.9}"
    records = {"metrics": {"train": [{"loss": 1.0}, {"loss": 0.5, "acc": 0.75}]}}
    assert summarize("records", records) == "train[2]: loss 0.5, acc 0.75"
    assert summarize("device", torch.device("cpu")) == "cpu"
    assert summarize("iter", None) == "None"
    assert summarize("opt_nm", "opt") == "'opt'"
    assert len(summarize("buffers", {"x": "y" * 500})) <= 160


def test_numpy_numbers_read_as_numbers() -> None:
    assert summarize("buffers", {"lr": np.float32(0.25), "n": np.int64(12345)}) == (
        "{lr: 0.25, n: 12,345}"
    )
    assert tensor_summary(torch.tensor([2.5])) == "float32[1] cpu · 2.5"


def test_stream_delta_sends_only_what_follows_the_halved_prefix() -> None:
    s = DownsampledSeries(capacity=4)
    s.add([1, 2, 3], [1.0, 2.0, 3.0])
    held, halvings = len(s), s.halvings
    s.add([4, 5], [4.0, 5.0])  # 5 points > 4: halved, the odd newest back in the bucket
    delta = stream_delta(s, held, halvings)
    assert delta == {"x": [3.5], "y": [3.5], "ema": delta["ema"], "halve": 1}
    mirror = [halve([1.0, 2.0, 3.0])[0], *delta["x"]]  # what the browser holds now
    assert mirror == s.x == [1.5, 3.5]
    assert halve([1.0, math.nan, 3.0]) == [1.0]
    assert stream_delta(s, len(s), s.halvings) is None
