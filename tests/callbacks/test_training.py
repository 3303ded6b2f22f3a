"""GradientClip bounds the gradient norm (unscaling first); MixedPrecision sets up torch.amp."""

from __future__ import annotations

import pytest
import torch

import luzwidget as lw
from luzwidget.callbacks import GradientClip, MixedPrecision
from luzwidget.callbacks.training import SCALER_BUFFER
from tests.training_helpers import FIT, make_data, make_spec, same_weights


class GradNorms(lw.Callback):
    """The gradient norm right before each optimizer step (after GradientClip ran)."""

    weight = 10

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_before_step(self, ctx):
        grads = [p.grad for p in ctx.model.parameters() if p.grad is not None]
        self.norms.append(
            float(
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            )
        )


def test_gradient_clip_bounds_the_norm_before_the_step():
    clip, norms = GradientClip(max_norm=1e-3), GradNorms()
    make_spec().fit(make_data(), epochs=1, callbacks=[clip, norms], **FIT)
    assert len(norms.norms) == 8
    assert all(n <= 1e-3 * (1 + 1e-5) for n in norms.norms)
    assert float(clip.last_norm) > 1e-3  # it really had something to clip


def test_gradient_clip_changes_the_update_as_clip_grad_norm_does():
    torch.manual_seed(0)
    spec = make_spec(lr=0.5)
    clipped = spec.fit(make_data(), epochs=1, callbacks=[GradientClip(0.01, norm_type=1)], **FIT)
    torch.manual_seed(0)

    class Manual(lw.Callback):
        def on_train_batch_before_step(self, ctx):
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), 0.01, norm_type=1)

    manual = spec.fit(make_data(), epochs=1, callbacks=[Manual()], **FIT)
    assert same_weights(clipped.model, manual.model)


def test_gradient_clip_max_norm_zero_zeroes_the_gradients_as_torch_does():
    class First(lw.Callback):
        def on_fit_begin(self, ctx):
            self.weights = {k: v.clone() for k, v in ctx.model.state_dict().items()}

    clip, norms, first = GradientClip(max_norm=0), GradNorms(), First()
    fitted = make_spec().fit(make_data(), epochs=1, callbacks=[clip, norms, first], **FIT)
    assert norms.norms == [0.0] * 8
    assert float(clip.last_norm) > 0  # there were gradients to zero
    after = fitted.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in first.weights.items())  # Adam: no change


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_norm": -1}, "max_norm must be a number >= 0, got -1"),
        ({"max_norm": float("nan")}, "max_norm must be a number >= 0, got nan"),
        ({"max_norm": True}, "max_norm must be a number >= 0, got True"),
        ({"norm_type": 0}, "norm_type must be a number > 0, got 0"),
        ({"norm_type": "2"}, "norm_type must be a number > 0, got '2'"),
    ],
)
def test_gradient_clip_bad_arguments(kwargs, fragment):
    with pytest.raises(lw.ConfigError, match="GradientClip") as info:
        GradientClip(**kwargs)
    assert fragment in str(info.value)


class FakeScaler:
    """Stands in for a CUDA GradScaler: records unscale_ calls."""

    def __init__(self) -> None:
        self.unscaled: list[object] = []

    def is_enabled(self):
        return True

    def unscale_(self, opt):
        self.unscaled.append(opt)


def test_gradient_clip_unscales_through_the_mixed_precision_scaler():
    scaler = FakeScaler()

    class Install(lw.Callback):
        def on_fit_begin(self, ctx):
            ctx.buffers = {**ctx.buffers, SCALER_BUFFER: scaler}

    fitted = make_spec().fit(make_data(), epochs=1, callbacks=[Install(), GradientClip()], **FIT)
    assert scaler.unscaled == [fitted.optimizers["opt"]] * 8


def test_mixed_precision_on_cpu_uses_bfloat16_autocast_and_restores_the_context():
    seen = []

    class Dtypes(lw.Callback):
        def on_train_batch_after_pred(self, ctx):
            seen.append((ctx.pred.dtype, ctx.buffers.get(SCALER_BUFFER)))

    fitted = make_spec().fit(
        make_data(),
        epochs=1,
        accelerator=lw.Accelerator(cpu=True),
        callbacks=[MixedPrecision(), Dtypes()],
        **FIT,
    )
    assert seen == [(torch.bfloat16, None)] * 8
    assert fitted.ctx.autocast is None
    assert all(p.dtype == torch.float32 for p in fitted.model.parameters())
    assert fitted.records["metrics"]["train"][0]["loss"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_on_cuda_uses_float16_and_a_grad_scaler():
    seen = []

    class Look(lw.Callback):
        def on_train_batch_after_pred(self, ctx):
            seen.append(ctx.pred.dtype)

        def on_train_batch_before_step(self, ctx):
            seen.append(type(ctx.buffers[SCALER_BUFFER]).__name__)

    mp = MixedPrecision(init_scale=2.0**10)
    clip = GradientClip(max_norm=1e-3)
    fitted = make_spec().fit(
        make_data(), epochs=2, accelerator=lw.Accelerator(), callbacks=[mp, clip, Look()], **FIT
    )
    assert seen[:2] == [torch.float16, "GradScaler"]
    assert float(clip.last_norm) < 1e3  # unscaled: the norm is not multiplied by 2**10
    assert SCALER_BUFFER not in fitted.ctx.buffers
    assert mp.state_dict()["scale"] > 0
    assert all(torch.isfinite(p).all() for p in fitted.model.parameters())


@pytest.mark.filterwarnings("ignore:.*CUDA is not available:UserWarning")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the wiring on a CPU-only machine")
def test_mixed_precision_cuda_wiring_with_a_disabled_scaler():
    """With ctx.device saying CUDA but no CUDA, torch disables autocast and the scaler:
    training must then equal plain training, with the scaler wired in and removed after."""

    class SayCuda(lw.Callback):  # only while MixedPrecision (weight -50) sets up
        weight = -60

        def on_fit_begin(self, ctx):
            ctx.device = torch.device("cuda")

    class BackToCpu(lw.Callback):
        weight = -40

        def on_fit_begin(self, ctx):
            ctx.device = torch.device("cpu")

    seen = []

    class Look(lw.Callback):
        def on_train_batch_before_step(self, ctx):
            seen.append(type(ctx.buffers.get(SCALER_BUFFER)).__name__)

    torch.manual_seed(0)
    plain = make_spec().fit(make_data(), epochs=1, **FIT)
    torch.manual_seed(0)
    mp = MixedPrecision()
    amp = make_spec().fit(
        make_data(),
        epochs=1,
        callbacks=[SayCuda(), mp, BackToCpu(), GradientClip(100.0), Look()],
        **FIT,
    )
    assert seen == ["GradScaler"] * 8
    assert same_weights(amp.model, plain.model)
    assert SCALER_BUFFER not in amp.ctx.buffers
    assert amp.ctx.autocast is None
    assert amp.ctx.step_opt is plain.ctx.step_opt
