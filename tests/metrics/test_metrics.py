"""luzwidget.metrics against scikit-learn and torchmetrics, over several uneven batches."""

from __future__ import annotations

import doctest
import importlib
import math
import timeit
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torchmetrics.classification as tmc
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from luzwidget.core.exceptions import ConfigError
from luzwidget.metrics import (
    MAE,
    MSE,
    RMSE,
    Accuracy,
    BinaryAccuracy,
    BinaryAccuracyWithLogits,
    BinaryAUROC,
    LossAverage,
    Metric,
    MetricSet,
    MulticlassAUROC,
    metric_set,
)
from luzwidget.metrics.base import FOLD_EVERY, DeviceSum, abbrev_of, check_metric, fresh
from luzwidget.metrics.names import unique_names

SIZES = (1, 7, 64, 128, 300, 500)  # uneven batches, 1000 samples in all
N = sum(SIZES)


def chunks(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """The tensors cut into batches of SIZES along dim 0."""
    start = 0
    for size in SIZES:
        yield tuple(t[start : start + size] for t in tensors)
        start += size


def run(metric: Any, pred: torch.Tensor, target: torch.Tensor) -> Any:
    """``metric`` updated batch by batch over ``pred``/``target``, then computed."""
    for p, t in chunks(pred, target):
        metric.update(p, t)
    return metric.compute()


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def binary_data(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities that carry some signal about 0/1 targets."""
    y = torch.randint(0, 2, (N,), generator=gen)
    p = (torch.rand(N, generator=gen) * 0.7 + 0.3 * y).clamp(0, 1)
    return p, y


def multiclass_data(gen: torch.Generator, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, c, (N,), generator=gen)
    logits = torch.randn(N, c, generator=gen) + 1.5 * torch.nn.functional.one_hot(y, c)
    return logits, y


# -- accuracy -----------------------------------------------------------------------------


@pytest.mark.parametrize("target_shape", ["(N,)", "(N, 1)"])
def test_accuracy_matches_sklearn(gen: torch.Generator, target_shape: str) -> None:
    logits, y = multiclass_data(gen)
    target = y if target_shape == "(N,)" else y.unsqueeze(1)
    expected = accuracy_score(y, logits.argmax(1))
    assert run(Accuracy(), logits, target) == pytest.approx(expected, abs=1e-12)
    assert run(Accuracy(), logits.softmax(1), target) == pytest.approx(expected, abs=1e-12)
    assert run(Accuracy(), logits.argmax(1), target) == pytest.approx(expected, abs=1e-12)
    tm = tmc.MulticlassAccuracy(num_classes=4, average="micro")
    assert run(Accuracy(), logits, target) == pytest.approx(run(tm, logits, y).item(), abs=1e-6)


def test_accuracy_over_extra_dimensions(gen: torch.Generator) -> None:
    scores = torch.randn(N, 3, 5, generator=gen)  # (N, C, L), as in segmentation
    y = torch.randint(0, 3, (N, 5), generator=gen)
    expected = accuracy_score(y.reshape(-1), scores.argmax(1).reshape(-1))
    assert run(Accuracy(), scores, y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (torch.rand(4, 1), torch.zeros(4), r"one score per sample.*BinaryAccuracy"),
        (torch.rand(4), torch.zeros(4), r"expected \(N, C\) class scores"),
        (torch.rand(4, 3), torch.zeros(5), r"same number of elements"),
    ],
)
def test_accuracy_refuses_shapes(pred: torch.Tensor, target: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Accuracy().update(pred, target)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize(("pred_shape", "target_shape"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_binary_accuracy_matches_sklearn(
    gen: torch.Generator, threshold: float, pred_shape: int, target_shape: int
) -> None:
    p, y = binary_data(gen)
    expected = accuracy_score(y, p > threshold)
    pred = p if pred_shape == 1 else p.unsqueeze(1)
    target = y.float() if target_shape == 1 else y.unsqueeze(1).float()
    got = run(BinaryAccuracy(threshold=threshold), pred, target)
    assert got == pytest.approx(expected, abs=1e-12)
    tm = tmc.BinaryAccuracy(threshold=threshold)  # also pred > threshold
    assert got == pytest.approx(run(tm, p, y).item(), abs=1e-6)


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_binary_accuracy_with_logits_is_sigmoid_then_threshold(
    gen: torch.Generator, threshold: float
) -> None:
    logits = torch.randn(N, 1, generator=gen) * 4
    y = torch.randint(0, 2, (N,), generator=gen)
    expected = run(BinaryAccuracy(threshold=threshold), logits.sigmoid(), y)
    assert run(BinaryAccuracyWithLogits(threshold=threshold), logits, y) == expected


def test_binary_accuracy_with_logits_is_exact_where_sigmoid_saturates() -> None:
    logits = torch.tensor([-200.0, -120.0, 40.0, 200.0])  # sigmoid: 0, 0, 1, 1 in float32
    m = BinaryAccuracyWithLogits(threshold=0.0)  # sigmoid(x) > 0 holds for every finite x
    m.update(logits, torch.ones(4))
    assert m.compute() == 1.0


def test_binary_accuracy_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match=r"BinaryAccuracy: pred has shape \(4, 2\)"):
        BinaryAccuracy().update(torch.rand(4, 2), torch.zeros(4))


# -- regression ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred_shape", "target_shape"),
    [((N,), (N,)), ((N, 1), (N,)), ((N,), (N, 1)), ((N, 1), (N, 1)), ((N, 3), (N, 3))],
)
def test_regression_matches_sklearn(
    gen: torch.Generator, pred_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> None:
    pred = torch.randn(pred_shape, generator=gen)
    target = torch.randn(target_shape, generator=gen)
    p, t = pred.reshape(N, -1).double().numpy(), target.reshape(N, -1).double().numpy()
    mse = mean_squared_error(t, p)
    assert run(MAE(), pred, target) == pytest.approx(mean_absolute_error(t, p), rel=1e-6)
    assert run(MSE(), pred, target) == pytest.approx(mse, rel=1e-6)
    assert run(RMSE(), pred, target) == pytest.approx(math.sqrt(mse), rel=1e-6)


def test_regression_accumulates_half_precision_without_overflow() -> None:
    pred, target = torch.full((4096,), 300.0, dtype=torch.float16), torch.zeros(4096)
    mse = MSE()
    mse.update(pred, target.half())  # a float16 sum of 300**2 * 4096 is inf
    assert mse.compute() == 90000.0


def test_regression_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"MAE: pred has shape \(4, 2\) but target has shape"):
        MAE().update(torch.zeros(4, 2), torch.zeros(4))


# -- AUROC --------------------------------------------------------------------------------


def bucket(p: torch.Tensor, num_thresholds: int = 200) -> np.ndarray:
    """The grid cell of each prediction: the number of thresholds <= p."""
    grid = torch.linspace(0, 1, num_thresholds)
    return torch.searchsorted(grid, p.contiguous(), right=True).numpy()


def grid_error_bound(p: np.ndarray, y: np.ndarray, num_thresholds: int = 200) -> float:
    """Half the fraction of (positive, negative) pairs sharing a grid cell.

    The grid AUROC is exactly the AUROC of the cells (a shared cell counts 1/2), and
    within a cell the exact AUROC counts 0, 1/2 or 1, so this bounds their difference.
    """
    cells = bucket(torch.as_tensor(p), num_thresholds)
    pos = np.bincount(cells[y == 1], minlength=num_thresholds + 1)
    neg = np.bincount(cells[y == 0], minlength=num_thresholds + 1)
    return 0.5 * float((pos * neg).sum()) / (pos.sum() * neg.sum())


@pytest.mark.parametrize(("pred_shape", "target_shape"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_binary_auroc_is_the_auroc_of_grid_cells(
    gen: torch.Generator, pred_shape: int, target_shape: int
) -> None:
    p, y = binary_data(gen)
    pred = p if pred_shape == 1 else p.unsqueeze(1)
    target = y.float() if target_shape == 1 else y.unsqueeze(1)
    got = run(BinaryAUROC(), pred, target)
    assert got == pytest.approx(roc_auc_score(y, bucket(p)), abs=1e-12)
    # So the grid's error has a bound we can compute: for predictions spread over [0, 1]
    # about 0.5 / 199 (the chance that two predictions share a cell is ~ 1 / 199) ...
    bound = grid_error_bound(p.numpy(), y.numpy())
    assert bound < 3e-3
    exact = roc_auc_score(y, p)
    assert abs(got - exact) <= bound + 1e-12
    # ... and errors inside cells mostly cancel, so the actual error is far smaller.
    assert abs(got - exact) < 5e-4
    # torchmetrics' binned AUROC uses the same grid and the same >= comparison.
    tm = tmc.BinaryAUROC(thresholds=200)
    assert got == pytest.approx(run(tm, p, y).item(), abs=1e-6)


def test_binary_auroc_with_many_thresholds_is_close_to_exact(gen: torch.Generator) -> None:
    p, y = binary_data(gen)
    got = run(BinaryAUROC(num_thresholds=100_001), p, y)
    assert got == pytest.approx(roc_auc_score(y, p), abs=1e-4)


def test_binary_auroc_from_logits_equals_sigmoid_first(gen: torch.Generator) -> None:
    logits = torch.randn(N, generator=gen) * 3
    y = (torch.rand(N, generator=gen) < logits.sigmoid()).long()
    from_logits = run(BinaryAUROC(from_logits=True), logits, y)
    assert from_logits == pytest.approx(run(BinaryAUROC(), logits.sigmoid(), y), abs=1e-12)
    bound = grid_error_bound(logits.sigmoid().numpy(), y.numpy())
    assert abs(from_logits - roc_auc_score(y, logits)) <= bound + 1e-12


def test_binary_auroc_doc_example_is_exact_on_a_coarse_grid() -> None:
    m = BinaryAUROC(num_thresholds=11)  # 0.0, 0.1, ..., 1.0: every prediction on its own
    m.update(torch.tensor([0.95, 0.85, 0.45]), torch.tensor([1, 1, 1]))
    m.update(torch.tensor([0.55, 0.35, 0.25]), torch.tensor([0, 0, 0]))
    assert m.compute() == pytest.approx(8 / 9, abs=1e-12)


def test_binary_auroc_is_nan_with_one_class() -> None:
    m = BinaryAUROC()
    m.update(torch.rand(10), torch.ones(10))
    assert math.isnan(m.compute())


# thresholds given explicitly: 0 and 1 among them, so torchmetrics' binned curve has the
# same end points as ours; unsorted and with a duplicate, which are sorted and dropped
GIVEN = [0.7, 0.0, 0.31, 0.5, 0.45, 0.9, 0.31, 0.05, 1.0]


@pytest.mark.parametrize("as_type", [list, tuple, np.array, torch.tensor])
def test_binary_auroc_with_given_thresholds_matches_torchmetrics(
    gen: torch.Generator, as_type: Any
) -> None:
    p, y = binary_data(gen)
    m = BinaryAUROC(thresholds=as_type(GIVEN))
    assert m.thresholds == tuple(sorted(set(torch.tensor(GIVEN).tolist())))
    assert m.num_thresholds == 8
    got = run(m, p, y)
    tm = tmc.BinaryAUROC(thresholds=torch.tensor(GIVEN).unique())
    assert got == pytest.approx(run(tm, p, y).item(), abs=1e-6)
    # and sklearn's AUROC of the cells the thresholds cut [0, 1] into
    cells = torch.searchsorted(torch.tensor(m.thresholds), p, right=True)
    assert got == pytest.approx(roc_auc_score(y, cells), abs=1e-12)


def test_binary_auroc_curve_always_ends_at_0_0_and_1_1(gen: torch.Generator) -> None:
    p, y = binary_data(gen)  # p in [0, 1): none reaches the threshold 1
    inner = [0.2, 0.5, 0.8]
    got = run(BinaryAUROC(thresholds=inner), p, y)
    tm = tmc.BinaryAUROC(thresholds=torch.tensor([0.0, *inner, 1.0]))
    assert got == pytest.approx(run(tm, p, y).item(), abs=1e-6)
    # one threshold: the AUROC of the predictions cut there, (tpr + 1 - fpr) / 2
    yb = y.bool()
    tpr, fpr = (p[yb] >= 0.5).double().mean(), (p[~yb] >= 0.5).double().mean()
    got = run(BinaryAUROC(thresholds=[0.5]), p, y)
    assert got == pytest.approx(float((tpr + 1 - fpr) / 2), abs=1e-12)


def test_auroc_thresholds_as_an_int_is_a_number_of_thresholds(gen: torch.Generator) -> None:
    p, y = binary_data(gen)
    m = BinaryAUROC(thresholds=50)
    assert (m.num_thresholds, m.thresholds) == (50, None)
    assert run(m, p, y) == run(BinaryAUROC(num_thresholds=50), p, y)
    logits, c = multiclass_data(gen)
    assert run(MulticlassAUROC(thresholds=30), logits.softmax(1), c) == run(
        MulticlassAUROC(num_thresholds=30), logits.softmax(1), c
    )


def test_binary_auroc_given_thresholds_from_logits(gen: torch.Generator) -> None:
    logits = torch.randn(N, generator=gen) * 3
    y = (torch.rand(N, generator=gen) < logits.sigmoid()).long()
    got = run(BinaryAUROC(thresholds=GIVEN, from_logits=True), logits, y)
    assert got == pytest.approx(run(BinaryAUROC(thresholds=GIVEN), logits.sigmoid(), y), abs=1e-6)


@pytest.mark.parametrize("average", ["macro", "weighted", None])
def test_multiclass_auroc_with_given_thresholds_matches_torchmetrics(
    gen: torch.Generator, average: str | None
) -> None:
    logits, y = multiclass_data(gen)
    got = run(MulticlassAUROC(thresholds=GIVEN, average=average, from_logits=True), logits, y)
    tm = tmc.MulticlassAUROC(
        num_classes=4, average=average or "none", thresholds=torch.tensor(GIVEN).unique()
    )
    np.testing.assert_allclose(got, run(tm, logits.softmax(1), y).numpy(), atol=1e-6)


def test_auroc_repr_shows_given_thresholds() -> None:
    assert repr(BinaryAUROC(thresholds=[0.5, 0.25])) == (
        "BinaryAUROC(thresholds=[0.25, 0.5], from_logits=False)"
    )
    assert repr(fresh(MulticlassAUROC(thresholds=(0.5,), name="auc_mc"))) == (
        "MulticlassAUROC(thresholds=[0.5], from_logits=False, average='micro', name='auc_mc')"
    )


AVERAGES = ["micro", "macro", "weighted", None]


@pytest.mark.parametrize("average", AVERAGES)
def test_multiclass_auroc_matches_sklearn(gen: torch.Generator, average: str | None) -> None:
    logits, y = multiclass_data(gen)
    probs = logits.softmax(1)
    got = run(MulticlassAUROC(average=average), probs, y)
    onehot = torch.nn.functional.one_hot(y, 4).numpy()
    # exact on grid cells, class by class (micro: all (sample, class) pairs pooled)
    on_grid = roc_auc_score(onehot, bucket(probs), average=average)
    np.testing.assert_allclose(got, on_grid, atol=1e-12)
    # and within the grid's bound of sklearn's exact one-vs-rest AUROC
    exact = roc_auc_score(y, probs.numpy(), multi_class="ovr", average=average)
    if average == "micro":
        bounds = grid_error_bound(probs.numpy().ravel(), onehot.ravel())
    else:
        bounds = max(grid_error_bound(probs[:, k].numpy(), onehot[:, k]) for k in range(4))
    assert bounds < 3e-3
    np.testing.assert_allclose(got, exact, atol=bounds + 1e-12)
    if average in ("macro", "weighted", None):
        tm = tmc.MulticlassAUROC(num_classes=4, average=average or "none", thresholds=200)
        np.testing.assert_allclose(got, run(tm, probs, y).numpy(), atol=1e-6)


@pytest.mark.parametrize("average", AVERAGES)
def test_multiclass_auroc_with_many_thresholds_is_close_to_exact(
    gen: torch.Generator, average: str | None
) -> None:
    logits, y = multiclass_data(gen)
    probs = logits.softmax(1)
    got = run(MulticlassAUROC(num_thresholds=100_001, average=average), probs, y.unsqueeze(1))
    exact = roc_auc_score(y, probs.numpy(), multi_class="ovr", average=average)
    np.testing.assert_allclose(got, exact, atol=1e-4)


def test_multiclass_auroc_from_logits_softmaxes(gen: torch.Generator) -> None:
    logits, y = multiclass_data(gen)
    from_logits = run(MulticlassAUROC(from_logits=True, average="none"), logits, y)
    from_probs = run(MulticlassAUROC(average="none"), logits.softmax(1), y)
    np.testing.assert_allclose(from_logits, from_probs, atol=1e-12)


def test_multiclass_auroc_leaves_absent_classes_out_of_the_means(gen: torch.Generator) -> None:
    probs = torch.rand(200, 3, generator=gen).softmax(1)
    y = torch.randint(0, 2, (200,), generator=gen)  # class 2 never occurs
    per_class = run(MulticlassAUROC(average="none"), probs, y)
    assert math.isnan(per_class[2])
    assert not math.isnan(per_class[0])
    assert run(MulticlassAUROC(average="macro"), probs, y) == pytest.approx(
        (per_class[0] + per_class[1]) / 2
    )


def test_multiclass_auroc_refuses_a_change_of_width() -> None:
    m = MulticlassAUROC()
    m.update(torch.rand(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"as in the first batch, 3"):
        m.update(torch.rand(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"For binary problems use BinaryAUROC"):
        MulticlassAUROC().update(torch.rand(4), torch.zeros(4))


# -- the loss average ---------------------------------------------------------------------


def test_loss_average_weights_by_batch_size(gen: torch.Generator) -> None:
    losses = torch.rand(len(SIZES), generator=gen)
    m = LossAverage()
    for loss, n in zip(losses, SIZES, strict=True):
        m.update_loss(loss.clone().requires_grad_(), n)
    assert all(not loss.requires_grad for loss in m.losses)
    expected = np.average(losses.numpy(), weights=SIZES)
    assert m.compute() == pytest.approx(expected, rel=1e-6)


def test_loss_average_folds_long_epochs_exactly(gen: torch.Generator) -> None:
    losses = torch.rand(3 * FOLD_EVERY + 5, generator=gen)
    sizes = [32] * (len(losses) - 1) + [7]
    m = LossAverage()
    for loss, n in zip(losses, sizes, strict=True):
        m.update_loss(loss, n)
    assert len(m.losses) < FOLD_EVERY
    expected = np.average(losses.double().numpy(), weights=sizes)
    assert m.compute() == pytest.approx(expected, rel=1e-12)


def test_loss_average_takes_floats_skips_empty_batches_and_refuses_update() -> None:
    m = LossAverage()
    assert math.isnan(m.compute())
    m.update_loss(2.0, 0)
    m.update_loss(1.0, 2)
    m.update_loss(torch.tensor(4.0), 1)
    assert m.compute() == pytest.approx(2.0)
    with pytest.raises(TypeError, match=r"update_loss\(loss, n\)"):
        m.update(None, None)


def test_device_sum_folds() -> None:
    s = DeviceSum(wide=True)
    for _ in range(2 * FOLD_EVERY + 3):
        s.add(torch.tensor(0.1))
    assert len(s.parts) == 3
    total = s.total()
    assert total is not None
    assert total.dtype == torch.float64
    assert total.item() == pytest.approx(0.1 * (2 * FOLD_EVERY + 3), rel=1e-7)


# -- arguments: tables of good and bad values ---------------------------------------------


GOOD = [
    (BinaryAccuracy, "threshold", 0, 0.0),
    (BinaryAccuracy, "threshold", 1, 1.0),
    (BinaryAccuracy, "threshold", 0.25, 0.25),
    (BinaryAccuracy, "threshold", np.float64(0.3), 0.3),
    (BinaryAccuracyWithLogits, "threshold", 0.7, 0.7),
    (BinaryAUROC, "num_thresholds", 2, 2),
    (BinaryAUROC, "num_thresholds", np.int64(50), 50),
    (BinaryAUROC, "from_logits", True, True),
    (MulticlassAUROC, "from_logits", False, False),
    (MulticlassAUROC, "average", "micro", "micro"),
    (MulticlassAUROC, "average", "macro", "macro"),
    (MulticlassAUROC, "average", "weighted", "weighted"),
    (MulticlassAUROC, "average", "none", "none"),
    (MulticlassAUROC, "average", None, "none"),
]


@pytest.mark.parametrize(("cls", "argument", "value", "stored"), GOOD)
def test_good_arguments(cls: type, argument: str, value: object, stored: object) -> None:
    metric = cls(**{argument: value})
    assert getattr(metric, argument) == stored
    assert type(getattr(metric, argument)) is type(stored)


BAD = [
    (BinaryAccuracy, "threshold", 1.5, r"BinaryAccuracy: threshold must be a number in \[0, 1\]"),
    (BinaryAccuracy, "threshold", -0.1, r"got -0.1; for example BinaryAccuracy\(threshold=0.5\)"),
    (BinaryAccuracy, "threshold", math.nan, r"threshold must be a number in \[0, 1\], got nan"),
    (BinaryAccuracy, "threshold", "0.5", r"threshold must be a number in \[0, 1\], got '0.5'"),
    (BinaryAccuracy, "threshold", True, r"threshold must be a number in \[0, 1\], got True"),
    (BinaryAccuracy, "threshold", None, r"threshold must be a number in \[0, 1\], got None"),
    (BinaryAccuracyWithLogits, "threshold", 2, r"BinaryAccuracyWithLogits\(threshold=0.5\)"),
    (BinaryAUROC, "num_thresholds", 1, r"num_thresholds must be an int >= 2, got 1"),
    (BinaryAUROC, "num_thresholds", 2.5, r"got 2.5; for example BinaryAUROC\(num_thresholds=200\)"),
    (BinaryAUROC, "num_thresholds", True, r"num_thresholds must be an int >= 2, got True"),
    (MulticlassAUROC, "num_thresholds", "200", r"MulticlassAUROC: num_thresholds must be an int"),
    (BinaryAUROC, "from_logits", "yes", r"BinaryAUROC: from_logits must be True or False, got 'y"),
    (MulticlassAUROC, "from_logits", 1, r"from_logits must be True or False, got 1"),
    (MulticlassAUROC, "average", "mean", r"average must be one of 'micro', 'macro', 'weighted'"),
    (MulticlassAUROC, "average", ["macro"], r"got \['macro'\]; for example .*average='macro'"),
    (BinaryAUROC, "thresholds", 1, r"BinaryAUROC: thresholds must be an int >= 2, got 1"),
    (BinaryAUROC, "thresholds", [], r"thresholds must be an int >= 2 or a non-empty sequence"),
    (BinaryAUROC, "thresholds", [0.5, 1.5], r"probabilities in \[0, 1\], got \[0.5, 1.5\]"),
    (BinaryAUROC, "thresholds", [math.nan], r"probabilities in \[0, 1\], got \[nan\]"),
    (BinaryAUROC, "thresholds", "0.5", r"got '0.5'; for example BinaryAUROC\(thresholds=\[0.1"),
    (BinaryAUROC, "thresholds", [[0.1, 0.2]], r"non-empty sequence of probabilities"),
    (MulticlassAUROC, "thresholds", True, r"MulticlassAUROC: thresholds must be an int >= 2 or"),
    (MAE, "name", "", r"MAE: a metric's name must be a non-empty string, got ''"),
    (Accuracy, "name", 3, r"Accuracy: a metric's name must be a non-empty string, got 3"),
    (BinaryAUROC, "name", ["auc"], r"BinaryAUROC: a metric's name must be a non-empty string"),
]


@pytest.mark.parametrize(("cls", "argument", "value", "match"), BAD)
def test_bad_arguments(cls: type, argument: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**{argument: value})


def test_threshold_is_checked_on_assignment_too() -> None:
    m = BinaryAccuracyWithLogits()
    m.threshold = 0.9
    m.update(torch.tensor([2.0, 2.5]), torch.tensor([0, 1]))  # sigmoid: 0.88, 0.92
    assert m.compute() == 1.0
    with pytest.raises(ConfigError, match=r"threshold must be a number in \[0, 1\], got 5"):
        m.threshold = 5
    assert m.threshold == 0.9


# -- the protocol: check_metric, metric_set, fresh, to, abbreviations --------------------


class OnlyUpdate:
    def update(self, pred: Any, target: Any) -> None: ...


class NoCompute(Metric):
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None: ...


class OneArgument(Metric):
    def update(self, pred: torch.Tensor) -> None:  # type: ignore[override]
        ...

    def compute(self) -> float:
        return 0.0


@pytest.mark.parametrize(
    ("metric", "match"),
    [
        (Accuracy, r"metrics: got the class Accuracy, expected an instance; write Accuracy\(\)"),
        (object(), r"is not a metric: it has no update\(\) or compute\(\) method"),
        (OnlyUpdate(), r"it has no compute\(\) method of its own.*torchmetrics metrics work"),
        (NoCompute(), r"it has no compute\(\) method of its own"),
        (Metric(), r"it has no update\(\) or compute\(\) method"),
        (OneArgument(), r"OneArgument.update\(pred: 'torch.Tensor'\) -> 'None' cannot be called"),
        ("acc", r"'acc' is not a metric"),
    ],
)
def test_check_metric_refuses(metric: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_metric(metric)


def test_check_metric_names_the_argument() -> None:
    with pytest.raises(ConfigError, match=r"^valid_metrics: got the class MAE"):
        metric_set(valid_metrics=[MAE])


def test_metric_set_takes_one_metric_lists_and_tuples() -> None:
    mae, mse, acc = MAE(), MSE(), Accuracy()
    ms = metric_set(mae, train_metrics=(m for m in [mse]), valid_metrics=[acc])
    assert ms.for_mode("train") == [mae, mse]
    assert ms.for_mode("valid") == [mae, acc]
    assert metric_set(ms) is ms
    assert metric_set() == MetricSet()
    with pytest.raises(ConfigError, match=r"already a MetricSet.*add them to that MetricSet"):
        metric_set(ms, valid_metrics=[mse])
    with pytest.raises(ConfigError, match=r"train_metrics: got a MetricSet"):
        metric_set(train_metrics=ms)


def test_metric_set_names_every_metric_uniquely() -> None:
    tm = tmc.BinaryAUROC()
    ms = metric_set(
        [BinaryAccuracyWithLogits(), BinaryAUROC(from_logits=True), BinaryAccuracy(), ("tm", tm)],
        train_metrics=[MAE(name="l1")],
        valid_metrics=[Accuracy(), ("auc_3", BinaryAUROC())],
    )
    assert [n for n, _ in ms.named("train")] == ["acc", "auc", "acc_2", "tm", "l1"]
    assert [n for n, _ in ms.named("valid")] == ["acc", "auc", "acc_2", "tm", "acc_3", "auc_3"]
    assert [m for _, m in ms.named("valid")] == ms.for_mode("valid")
    assert ms.for_mode("train")[3] is tm
    # the loss's names are taken first; a metric abbreviated "loss" gets a suffix
    loss_like = [(None, "loss", "L"), (None, "loss", "L")]
    assert unique_names(loss_like, reserved=["loss", "loss_2"]) == ["loss_3", "loss_4"]
    # a top-level pair is one named metric
    assert metric_set(("mine", MAE())).named("train")[0][0] == "mine"


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        ([("loss", MAE())], r"the name 'loss' of MAE is already used by the loss"),
        ([MAE(name="x"), ("x", MSE())], r"'x' of MSE is already used by MAE.*e.g. 'x_2'"),
        ([MAE(), ("mae", MSE())], r"'mae' of MSE is already used by MAE; metrics are named"),
        ([("", MAE())], r"metrics: a metric's name must be a non-empty string, got ''"),
        ([("x", "not a metric")], r"metrics: 'not a metric' is not a metric"),
    ],
)
def test_metric_set_refuses_names_already_in_use(metrics: list[Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        metric_set(metrics)


def test_a_given_name_is_kept_by_fresh_and_shown() -> None:
    m = BinaryAccuracy(0.3, name="acc_03")
    assert (fresh(m).name, abbrev_of(m)) == ("acc_03", "acc")
    assert repr(m) == "BinaryAccuracy(threshold=0.3, name='acc_03')"
    assert repr(MSE(name="sq")) == "MSE(name='sq')"
    assert repr(MSE()) == "MSE()"


def test_a_torchmetrics_metric_works_through_fresh(gen: torch.Generator) -> None:
    logits, y = multiclass_data(gen, c=3)
    proto = tmc.MulticlassAccuracy(num_classes=3, average="micro")
    assert metric_set(proto).metrics == [proto]
    metric = fresh(check_metric(proto)).to("cpu")
    assert metric is not proto
    value = run(metric, logits, y)
    assert value.item() == pytest.approx(accuracy_score(y, logits.argmax(1)), abs=1e-6)
    assert abbrev_of(metric) == "multiclassaccuracy"
    assert proto.update_count == 0  # the prototype did not see the batches


ALL = [
    Accuracy(),
    BinaryAccuracy(),
    BinaryAccuracyWithLogits(),
    BinaryAUROC(),
    MulticlassAUROC(),
    MAE(),
    MSE(),
    RMSE(),
]
ABBREVS = ["acc", "acc", "acc", "auc", "auc", "mae", "mse", "rmse"]  # luz's, lower-cased


def sample_batch(metric: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A small batch of the kind ``metric`` expects."""
    if isinstance(metric, Accuracy | MulticlassAUROC):
        return torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    if isinstance(metric, BinaryAccuracy | BinaryAUROC):
        return torch.rand(6, 1), torch.tensor([0, 1, 0, 1, 1, 0])
    return torch.rand(6, 1), torch.rand(6, 1)


@pytest.mark.parametrize(("metric", "abbrev"), list(zip(ALL, ABBREVS, strict=True)), ids=repr)
def test_abbreviations_follow_luz(metric: Any, abbrev: str) -> None:
    assert abbrev_of(metric) == abbrev


@pytest.mark.parametrize("metric", ALL, ids=repr)
def test_compute_before_update_is_nan(metric: Any) -> None:
    assert math.isnan(fresh(metric).compute())


def test_multiclass_auroc_none_before_update_is_empty() -> None:
    assert MulticlassAUROC(average="none").compute() == []


@pytest.mark.parametrize("metric", ALL, ids=repr)
def test_fresh_is_a_reset_independent_copy(metric: Any) -> None:
    used = fresh(metric)
    used.update(*sample_batch(metric))
    value = used.compute()
    copy = fresh(used)
    assert copy is not used
    assert type(copy) is type(used)
    assert vars(copy).keys() == vars(used).keys()
    assert math.isnan(copy.compute())
    copy.update(*sample_batch(metric))
    copy.update(*sample_batch(metric))
    assert used.compute() == value  # the copy shares no state with the original


def test_fresh_keeps_options() -> None:
    copy = fresh(MulticlassAUROC(num_thresholds=7, from_logits=True, average="weighted"))
    assert repr(copy) == "MulticlassAUROC(num_thresholds=7, from_logits=True, average='weighted')"
    assert fresh(BinaryAccuracy(0.3)).threshold == 0.3


def state_tensors(metric: Any) -> list[torch.Tensor]:
    """All tensors ``metric`` holds, directly, in lists or in a DeviceSum."""
    found = []
    for value in vars(metric).values():
        if isinstance(value, DeviceSum):
            value = [*value.parts, value.partial]
        found += [t for t in (value if isinstance(value, list) else [value]) if torch.is_tensor(t)]
    return found


def state_devices(metric: Any) -> set[str]:
    return {t.device.type for t in state_tensors(metric)}


@pytest.mark.parametrize("metric", ALL, ids=repr)
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_to_moves_the_state(metric: Any, device: str) -> None:
    m = fresh(metric)
    assert m.to(device) is m  # before any update there is nothing to move
    m = fresh(metric)
    m.update(*sample_batch(metric))
    assert state_devices(m) == {"cpu"}
    assert m.to(device) is m
    assert state_devices(m) == {device}
    if device == "cpu":
        assert not math.isnan(float(np.nanmean(m.compute())))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_loss_average_to(device: str) -> None:
    m = LossAverage()
    for _ in range(FOLD_EVERY + 1):
        m.update_loss(torch.tensor(1.0), 4)
    assert m.to(device) is m
    assert state_devices(m) == {device}
    assert m.partial is not None
    assert m.partial.device.type == device


# -- cost: no host sync, no autograd graph, timings ---------------------------------------


SYNCS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__")


def sync(self: torch.Tensor, *args: Any, **kwargs: Any) -> None:
    """Stands in for the methods that wait for the device."""
    raise AssertionError("update() waited for the device")


@pytest.mark.parametrize("metric", ALL, ids=repr)
def test_update_never_reads_the_device(metric: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m = fresh(metric)
    pred, target = sample_batch(metric)
    pred.requires_grad_()

    with monkeypatch.context() as patch:
        for name in SYNCS:
            patch.setattr(torch.Tensor, name, sync)
        for _ in range(3):
            m.update(pred, target)
    assert state_tensors(m)
    assert not any(t.requires_grad for t in state_tensors(m))  # no autograd graph kept
    m.compute()


def test_the_sync_check_catches_item(monkeypatch: pytest.MonkeyPatch) -> None:
    class Syncing(Accuracy):
        def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
            self.count += int((pred.argmax(1) == target).sum().item())

    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "item", sync)
        with pytest.raises(AssertionError, match="waited for the device"):
            Syncing().update(*sample_batch(Accuracy()))


def test_update_loss_never_reads_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    m = LossAverage()
    loss = torch.tensor(2.0, requires_grad=True) * 1
    with monkeypatch.context() as patch:
        for name in SYNCS:
            patch.setattr(torch.Tensor, name, sync)
        for n in [8] * FOLD_EVERY + [3]:  # folds once and scales a short batch
            m.update_loss(loss, n)
    assert not any(t.requires_grad for t in state_tensors(m))
    assert m.compute() == pytest.approx(2.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("metric", ALL, ids=repr)
def test_update_does_not_synchronize_cuda(metric: Any) -> None:
    m = fresh(metric).to("cuda")
    pred, target = (t.cuda() for t in sample_batch(metric))
    loss = LossAverage()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            m.update(pred, target)
            loss.update_loss(pred.sum(), len(pred))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    m.compute()
    assert loss.compute() == pytest.approx(pred.sum().item() / len(pred))


def test_print_per_batch_cost() -> None:
    """Per-batch CPU cost of the loop's metric calls (printed with ``pytest -s``, not asserted)."""
    loss = torch.tensor(0.5, requires_grad=True) * 2
    average = LossAverage()
    pred, target = torch.randn(256, 10), torch.randint(0, 10, (256,))
    accuracy = Accuracy()
    timings = {
        "LossAverage.update_loss": (lambda: average.update_loss(loss, 256), 20_000),
        "Accuracy.update (256x10)": (lambda: accuracy.update(pred, target), 2_000),
    }
    for name, (call, number) in timings.items():
        seconds = min(timeit.repeat(call, number=number, repeat=3)) / number
        print(f"{name}: {seconds * 1e6:.2f} µs per batch")


# -- the docstring examples run -----------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["base", "classification", "regression", "auroc", "names", "sums"]
)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"luzwidget.metrics.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
