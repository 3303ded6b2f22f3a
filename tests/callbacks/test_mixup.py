"""Mixup mixes inputs and targets the way its loss expects; metrics see the real targets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.callbacks import Mixup, MixupLoss
from luzwidget.callbacks.mixup import MixupTarget

N = 8  # one-hot inputs: row i of the mixed batch tells which rows were mixed


class Look(lw.Callback):
    """Copies of input, target, pred, loss after each loss; the target at each batch end."""

    def __init__(self) -> None:
        self.steps: list[tuple] = []
        self.valid_targets: list[object] = []
        self.end_targets: list[object] = []

    def on_train_batch_after_loss(self, ctx):
        self.steps.append(
            (ctx.batch[0], ctx.batch[1], ctx.input, ctx.target, ctx.pred.detach(), ctx.loss)
        )

    def on_valid_batch_after_loss(self, ctx):
        self.valid_targets.append(ctx.target)

    def on_train_batch_end(self, ctx):
        self.end_targets.append(ctx.target)


def fit(mixup, loss=None, valid=False):
    x = torch.eye(N).repeat(2, 1)
    y = torch.arange(2 * N) % 2
    look = Look()
    spec = lw.setup(
        nn.Linear,
        loss=loss or nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD,
        metrics=[lw.metrics.Accuracy()],
    )
    fitted = (
        spec.set_hparams(in_features=N, out_features=2)
        .set_opt_hparams(lr=0.1)
        .fit(
            (x, y),
            epochs=1,
            callbacks=[mixup, look],
            verbose=False,
            valid_data=(x, y) if valid else None,
            dataloader_options={"batch_size": N},
        )
    )
    return fitted, look


def test_inputs_and_targets_are_mixed_with_the_dominant_weight_on_the_sample():
    torch.manual_seed(0)
    _, look = fit(Mixup(alpha=0.4, auto_loss=True))
    assert len(look.steps) == 2
    for x, y, mixed, target, pred, loss in look.steps:
        assert isinstance(target, MixupTarget)
        assert torch.equal(target.target, y)
        w = target.weight
        assert ((w >= 0.5) & (w <= 1)).all()
        for i in range(N):
            own = int(x[i].argmax())
            other_rows = [j for j in range(N) if j != own and mixed[i, j] > 0]
            if not other_rows:  # mixed with itself
                assert mixed[i, own] == pytest.approx(1.0)
                continue
            (j,) = other_rows
            assert mixed[i, own] == pytest.approx(float(w[i]))
            assert mixed[i, j] == pytest.approx(1 - float(w[i]))
            partner = next(k for k in range(N) if int(x[k].argmax()) == j)
            assert target.other[i] == y[partner]
        ce = nn.functional.cross_entropy
        expected = (
            w * ce(pred, y, reduction="none") + (1 - w) * ce(pred, target.other, reduction="none")
        ).mean()
        assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_metrics_and_later_callbacks_see_the_original_targets():
    fitted, look = fit(Mixup(auto_loss=True))
    assert all(torch.equal(t, s[1]) for t, s in zip(look.end_targets, look.steps, strict=True))
    assert 0 <= fitted.records["metrics"]["train"][0]["acc"] <= 1


def test_validation_is_not_mixed_unless_asked():
    _, look = fit(Mixup(auto_loss=True), valid=True)
    assert all(isinstance(t, torch.Tensor) for t in look.valid_targets)
    _, look = fit(Mixup(auto_loss=True, run_valid=True), valid=True)
    assert all(isinstance(t, MixupTarget) for t in look.valid_targets)


def test_auto_loss_wraps_for_the_fit_only():
    loss = nn.CrossEntropyLoss()
    fitted, _ = fit(Mixup(auto_loss=True), loss=loss)
    assert fitted.ctx.loss_fn is loss


def test_mixup_loss_given_to_setup_works_without_auto_loss():
    _, look = fit(Mixup(), loss=MixupLoss(nn.CrossEntropyLoss()))
    assert isinstance(look.steps[0][3], MixupTarget)


def test_without_a_mixup_loss_it_says_how_to_fix_it():
    with pytest.raises(lw.CallbackError, match=r"MixupLoss\(nn.CrossEntropyLoss\(\)\)"):
        fit(Mixup())


def test_mixup_loss_math_and_plain_targets():
    pred = torch.randn(4, 3)
    y1, y2 = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 1, 0])
    w = torch.tensor([0.5, 0.7, 0.9, 1.0])
    ce = nn.CrossEntropyLoss()
    mixed = MixupLoss(ce)(pred, MixupTarget(y1, y2, w))
    per = nn.functional.cross_entropy
    expected = w * per(pred, y1, reduction="none") + (1 - w) * per(pred, y2, reduction="none")
    assert float(mixed) == pytest.approx(float(expected.mean()))
    assert ce.reduction == "mean"  # restored
    assert torch.equal(MixupLoss(ce)(pred, y1), ce(pred, y1))
    with pytest.raises(lw.ConfigError, match="reduction"):
        MixupLoss(lambda p, t: p)


def test_auto_loss_with_a_reduction_none_loss_validates_with_the_mean():
    loss = nn.CrossEntropyLoss(reduction="none")  # as luz documents nn_mixup_loss
    fitted, _ = fit(Mixup(auto_loss=True), loss=loss, valid=True)
    x, y = torch.eye(N).repeat(2, 1), torch.arange(2 * N) % 2
    with torch.no_grad():
        expected = nn.functional.cross_entropy(fitted.model(x), y)
    assert fitted.records["metrics"]["valid"][0]["loss"] == pytest.approx(float(expected))
    assert loss.reduction == "none"
    pred = torch.randn(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    assert torch.equal(MixupLoss(loss)(pred, target), loss(pred, target).mean())


def test_bad_alpha():
    with pytest.raises(lw.ConfigError, match="alpha"):
        Mixup(alpha=0)
