"""CSVLogger writes exactly the records; TensorBoard writes them as event files."""

from __future__ import annotations

import csv
import sys

import pytest

import luzwidget as lw
from luzwidget.callbacks import CSVLogger, TensorBoard
from tests.training_helpers import FIT, make_data, make_spec


def fit_two_epochs(callbacks, **kw):
    spec = make_spec(metrics=[lw.metrics.Accuracy()])
    return spec.fit(
        make_data(), epochs=2, valid_data=make_data(16, seed=1), callbacks=callbacks, **FIT, **kw
    )


def test_csv_logger_writes_one_row_per_epoch_and_set(tmp_path):
    path = tmp_path / "logs" / "metrics.csv"
    fitted = fit_two_epochs([CSVLogger(path)])
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "set", "loss", "acc"]
    expected = [
        [str(epoch), set_, repr(m["loss"]), repr(m["acc"])]
        for epoch in (1, 2)
        for set_ in ("train", "valid")
        for m in [fitted.records["metrics"][set_][epoch - 1]]
    ]
    assert rows[1:] == expected


def test_csv_logger_keeps_the_history_when_training_continues(tmp_path):
    path = tmp_path / "metrics.csv"
    fitted = fit_two_epochs([CSVLogger(path)])
    fitted.fit(make_data(), epochs=1, callbacks=[CSVLogger(path)], **FIT)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["set"]) for r in rows] == [
        ("1", "train"),
        ("1", "valid"),
        ("2", "train"),
        ("2", "valid"),
        ("3", "train"),
    ]
    assert rows[-1]["acc"] == repr(fitted.records["metrics"]["train"][2]["acc"])


def read_events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_metrics_and_learning_rates(tmp_path):
    fitted = fit_two_epochs([TensorBoard(tmp_path)])
    events = read_events(tmp_path)
    tags = set(events.Tags()["scalars"])
    assert tags == {"train/loss", "train/acc", "valid/loss", "valid/acc", "lr/opt"}
    for set_ in ("train", "valid"):
        logged = [(e.step, e.value) for e in events.Scalars(f"{set_}/loss")]
        records = fitted.records["metrics"][set_]
        assert logged == [(epoch, pytest.approx(m["loss"])) for epoch, m in enumerate(records, 1)]
    assert [e.value for e in events.Scalars("lr/opt")] == [pytest.approx(1e-2)] * 2
    assert events.Tags()["histograms"] == []


def test_tensorboard_histograms(tmp_path):
    fit_two_epochs([TensorBoard(tmp_path, histograms=True)])
    histograms = read_events(tmp_path).Tags()["histograms"]
    assert sorted(histograms) == [
        "weights/body.0.bias",
        "weights/body.0.weight",
        "weights/body.3.bias",
        "weights/body.3.weight",
    ]


def test_tensorboard_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install tensorboard"):
        TensorBoard("runs")
