"""Records: the read-only view over ``records["metrics"][set][epoch - 1]``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from luzwidget.core.context import Context
from luzwidget.core.records import MONITORED_SETS, Records
from luzwidget.fitted import Evaluation
from tests.helpers import make_data, make_spec


def _records() -> dict[str, Any]:
    # epoch 2 of train is a hole (None), valid starts at epoch 2 ({} at 1), and one metric is
    # a dict: the layouts ctx.log() produces.
    return {
        "metrics": {
            "train": [
                {"loss": 1.0, "acc": 0.5},
                None,
                {"loss": 0.25, "acc": 0.75, "per_class": {"a": 0.5, "b": 1.0}},
            ],
            "valid": [{}, {"loss": 2.0}],
        },
        "profile": {"fit": [3.0]},
    }


def test_metrics_reads_an_epoch_or_the_last() -> None:
    view = Records(_records())
    assert view.metrics("train", 1) == {"loss": 1.0, "acc": 0.5}
    assert view.metrics("train", 2) == {}
    assert view.metrics("train") == {
        "loss": 0.25,
        "acc": 0.75,
        "per_class": {"a": 0.5, "b": 1.0},
    }
    assert view.metrics("valid", 1) == {}
    assert view.metrics("valid") == {"loss": 2.0}
    assert view.metrics("test") == {}  # nothing logged and no epoch asked: empty


def test_metrics_returns_a_copy_and_the_view_does_not() -> None:
    records = _records()
    view = Records(records)
    view.metrics("valid")["loss"] = 99.0
    assert records["metrics"]["valid"][1] == {"loss": 2.0}
    assert view.raw is records
    records["metrics"]["valid"].append({"loss": 1.5})  # the view reads what is there now
    assert view.metrics("valid") == {"loss": 1.5}
    assert view.epochs("valid") == 3


def test_metrics_out_of_range_says_what_is_logged() -> None:
    view = Records(_records())
    with pytest.raises(KeyError, match=r"no train metrics for epoch 4; logged: 1\.\.3"):
        view.metrics("train", 4)
    with pytest.raises(KeyError, match=r"no train metrics for epoch 0; logged: 1\.\.3"):
        view.metrics("train", 0)
    logged = r"logged: none in 'test' \(sets logged: 'train', 'valid'\)"
    with pytest.raises(KeyError, match=r"no test metrics for epoch 1; " + logged):
        view.metrics("test", 1)
    with pytest.raises(KeyError, match=r"logged: none in 'train' \(sets logged: none\)"):
        Records({}).metrics("train", 1)
    assert view.metrics("train", 4, default={}) == {}
    sentinel: dict[str, Any] = {"x": 1}
    assert view.metrics("test", 9, default=sentinel) is sentinel


def test_epochs_and_sets() -> None:
    view = Records(_records())
    assert (view.epochs("train"), view.epochs("valid"), view.epochs("test")) == (3, 2, 0)
    assert view.sets() == ["train", "valid"]
    assert Records({"metrics": {"valid": [], "train": [{"loss": 1.0}]}}).sets() == ["train"]
    assert Records({}).sets() == []
    assert Records({"metrics": None}).epochs("train") == 0


def test_value_and_get() -> None:
    view = Records(_records())
    assert view.value("loss", "train") == 0.25
    assert view.value("loss", "train", 1) == 1.0
    assert view.value("per_class", "train") == {"a": 0.5, "b": 1.0}
    with pytest.raises(KeyError, match=r"no valid metric 'acc' at epoch 2; logged: \['loss'\]"):
        view.value("acc", "valid", 2)
    with pytest.raises(KeyError, match=r"no train metric 'loss' at epoch 2; logged: none"):
        view.value("loss", "train", 2)
    with pytest.raises(KeyError, match=r"no valid metrics for epoch 3"):
        view.value("loss", "valid", 3)
    assert view.get("loss", "valid", 2) == 2.0
    assert view.get("loss", "valid", 1) is None
    assert view.get("loss", "valid", 0, default=-1) == -1
    assert view.get("loss", "train", 2, default=-1) == -1
    assert view.get("loss", "test", 1) is None
    # a value logged as None is a value, not a missing one
    assert Records({"metrics": {"train": [{"loss": None}]}}).get("loss", "train", 1, -1) is None


def test_last_skips_empty_entries() -> None:
    view = Records(_records())
    assert view.last("train") == (3, {"loss": 0.25, "acc": 0.75, "per_class": {"a": 0.5, "b": 1.0}})
    assert view.last("valid") == (2, {"loss": 2.0})
    assert Records({"metrics": {"valid": [{"loss": 1.0}, {}, None]}}).last("valid") == (
        1,
        {"loss": 1.0},
    )
    assert view.last("test") == (0, {})


def test_rows_are_tidy_in_logged_order() -> None:
    assert list(Records(_records()).rows()) == [
        ("train", "loss", 1, 1.0),
        ("train", "acc", 1, 0.5),
        ("train", "loss", 3, 0.25),
        ("train", "acc", 3, 0.75),
        ("train", "per_class", 3, {"a": 0.5, "b": 1.0}),
        ("valid", "loss", 2, 2.0),
    ]
    assert list(Records({}).rows()) == []
    assert list(Records({"metrics": {"train": None}}).rows()) == []


def test_monitors_by_epoch() -> None:
    records = _records()
    records["metrics"]["test"] = [{"loss": 0.0}]  # not a set a monitor can name
    view = Records(records)
    assert MONITORED_SETS == ("train", "valid")
    assert view.monitors(1) == ["train_loss", "train_acc"]
    assert view.monitors(2) == ["valid_loss"]
    assert view.monitors(3) == ["train_loss", "train_acc", "train_per_class"]
    assert view.monitors(4) == []
    assert view.monitors(0) == []
    assert view.monitors() == ["train_loss", "train_acc", "train_per_class", "valid_loss"]
    assert Records({}).monitors() == []


def test_repr() -> None:
    assert repr(Records(_records())) == "<Records train: 3 epochs, valid: 2 epochs>"
    assert repr(Records({})) == "<Records no metrics>"


# -- through a Context, a Fitted and an Evaluation -------------------------------------------


def test_context_history_is_a_view_of_the_logged_dict() -> None:
    ctx = Context()
    ctx.epoch = 1
    ctx.training = True
    ctx.log_metric("loss", 1.0)
    ctx.log_metric("acc", torch.tensor(0.5))
    history = ctx.history
    assert isinstance(history, Records)
    assert history.raw is ctx.records
    ctx.epoch = 2
    ctx.log_metric("loss", 0.5)  # logged after the view was taken: it shows
    assert history.epochs("train") == 2
    assert history.metrics("train", 1)["acc"] == torch.tensor(0.5)
    assert history.monitors(1) == ["train_loss", "train_acc"]
    assert ctx.get_metrics("train") == {"loss": 0.5}
    ctx.records = {"metrics": {"valid": [{"loss": 3.0}]}}  # a restore replaces the dict
    assert ctx.history.sets() == ["valid"]
    with pytest.raises(AttributeError):
        ctx.history = Records({})  # type: ignore[misc]


def test_get_metric_with_nothing_logged_in_the_set() -> None:
    ctx = Context()
    ctx.epoch = 1
    ctx.training = True
    ctx.log_metric("loss", 1.0)
    assert ctx.get_metrics("valid", 3) == {}  # luz: no set logged yet is no metrics
    with pytest.raises(KeyError, match=r"no valid metric 'loss': nothing is logged in 'valid'"):
        ctx.get_metric("loss", "valid")
    with pytest.raises(KeyError, match=r"no train metric 'acc' at epoch 1; logged: \['loss'\]"):
        ctx.get_metric("acc", "train", 1)


def test_evaluation_reads_its_records_through_the_view() -> None:
    records = {"metrics": {"valid": [{"loss": 0.125, "mae": 2, "hist": [1, 2]}]}}
    ev = Evaluation(records)
    assert ev.history.raw is records
    assert ev["loss"] == 0.125
    assert ev["hist"] == [1, 2]
    assert repr(ev) == "<Evaluation loss=0.125, mae=2, hist=[1, 2]>"
    with pytest.raises(KeyError, match=r"no metric 'acc'; computed: loss, mae, hist\."):
        ev["acc"]
    empty = Evaluation({"metrics": {"valid": []}})  # was an IndexError
    assert repr(empty) == "<Evaluation >"
    with pytest.raises(KeyError, match=r"no metric 'loss'; computed: \."):
        empty["loss"]


def test_a_fitted_model_history() -> None:
    x, y = make_data(64)
    fitted = make_spec().fit((x, y), epochs=2, valid_data=(x, y), verbose=False)
    history = fitted.history
    assert history.raw is fitted.records
    assert (history.epochs("train"), history.epochs("valid")) == (2, 2)
    assert history.monitors() == ["train_loss", "valid_loss"]
    rows = list(history.rows())
    assert [(s, m, e) for s, m, e, _ in rows] == [
        ("train", "loss", 1),
        ("train", "loss", 2),
        ("valid", "loss", 1),
        ("valid", "loss", 2),
    ]
    assert rows[3][3] == fitted.ctx.get_metric("loss", "valid")
    assert fitted.get_metrics()["value"].tolist() == [r[3] for r in rows]
