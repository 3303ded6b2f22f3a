"""What each inner batch event means, not only where it comes in the order.

At ``on_train_batch_after_loss`` and ``on_train_batch_before_backward`` the gradients of
this batch do not exist yet, and what a callback puts in ``ctx.loss_grad`` there is what
gets backpropagated; at ``on_train_batch_before_step`` they do, and the weights have not
moved; at ``on_train_batch_after_step`` they have, by exactly one SGD step. Validation and
prediction build no graph and leave the gradients alone.
"""

from __future__ import annotations

from typing import Any

import torch

import luzwidget as lw
from tests.helpers import E, Recorder, make_data, make_spec, snapshot, state_equal

LR = 0.05
OPTS = {"batch_size": 16}
Grads = dict[str, torch.Tensor | None]
INNER = (
    E.on_train_batch_begin,
    E.on_train_batch_after_pred,
    E.on_train_batch_after_loss,
    E.on_train_batch_before_backward,
    E.on_train_batch_before_step,
    E.on_train_batch_after_step,
    E.on_train_batch_end,
)


def _grads(model: torch.nn.Module) -> Grads:
    return {
        n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()
    }


def _same(a: Grads, b: Grads) -> bool:
    return a.keys() == b.keys() and all(
        (a[k] is None and b[k] is None)
        or (a[k] is not None and b[k] is not None and torch.equal(a[k], b[k]))  # type: ignore[arg-type]
        for k in a
    )


class Probe(Recorder):
    """Per training batch and inner event: the weights and the ``.grad`` of every parameter.

    At ``after_loss`` it also computes this batch's own gradient with ``autograd.grad``
    (which leaves ``.grad`` alone), the reference the loop's backward must reproduce.
    """

    def __init__(self, hooks: dict[Any, Any] | None = None) -> None:
        super().__init__(hooks)
        self.weights: dict[tuple[int, int, Any], dict[str, torch.Tensor]] = {}
        self.grads: dict[tuple[int, int, Any], Grads] = {}
        self.own: dict[tuple[int, int], dict[str, torch.Tensor]] = {}

    def record(self, ctx: lw.Context, event: Any) -> None:
        if event in INNER:
            key = (ctx.epoch, ctx.iter, event)
            self.weights[key] = snapshot(ctx.model)
            self.grads[key] = _grads(ctx.model)
            if event is E.on_train_batch_after_loss:
                names, params = zip(*ctx.model.named_parameters(), strict=True)
                with torch.enable_grad():
                    got = torch.autograd.grad(ctx.loss_grad, params, retain_graph=True)
                self.own[(ctx.epoch, ctx.iter)] = dict(zip(names, got, strict=True))
        super().record(ctx, event)


def _fit(callbacks: list[Any], epochs: int = 2, **kwargs: Any) -> lw.Fitted:
    x, y = make_data(32)
    return make_spec(lr=LR).fit(
        (x, y),
        epochs=epochs,
        callbacks=callbacks,
        verbose=False,
        dataloader_options=OPTS,
        **kwargs,
    )


BATCHES = [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_the_gradients_of_a_batch_appear_between_before_backward_and_before_step() -> None:
    probe = Probe()
    _fit([probe])
    assert set(probe.own) == set(BATCHES)
    previous: Grads = dict.fromkeys(probe.own[(1, 1)])  # no .grad before the first backward
    for epoch, it in BATCHES:
        own = probe.own[(epoch, it)]
        for event in (E.on_train_batch_after_loss, E.on_train_batch_before_backward):
            seen = probe.grads[(epoch, it, event)]
            assert _same(seen, previous), f"{event.value} of batch {epoch}.{it} sees new grads"
        at_step = probe.grads[(epoch, it, E.on_train_batch_before_step)]
        assert not _same(at_step, previous)
        for name, grad in own.items():
            assert at_step[name] is not None
            torch.testing.assert_close(at_step[name], grad)
        previous = at_step


def test_the_weights_move_between_before_step_and_after_step_by_one_sgd_step() -> None:
    probe = Probe()
    _fit([probe])
    for epoch, it in BATCHES:
        begin = probe.weights[(epoch, it, E.on_train_batch_begin)]
        for event in INNER[1:5]:  # after_pred .. before_step
            assert state_equal(probe.weights[(epoch, it, event)], begin), event.value
        after = probe.weights[(epoch, it, E.on_train_batch_after_step)]
        grads = probe.grads[(epoch, it, E.on_train_batch_before_step)]
        for name, weight in after.items():
            grad = grads[name]
            assert grad is not None
            torch.testing.assert_close(weight, begin[name] - LR * grad)
        assert state_equal(probe.weights[(epoch, it, E.on_train_batch_end)], after)


def _scale_loss_grad(factor: float) -> Any:
    def hook(ctx: lw.Context) -> None:
        with torch.enable_grad():  # callbacks run under no_grad, as in luz
            ctx.loss_grad = ctx.loss_grad * factor

    return hook


def test_zeroing_loss_grad_before_backward_leaves_plain_sgd_weights_unmoved() -> None:
    torch.manual_seed(0)
    x, y = make_data(32)
    spec = make_spec(lr=LR)
    probe = Probe({E.on_train_batch_before_backward: _scale_loss_grad(0.0)})
    fitted = spec.fit((x, y), epochs=1, callbacks=[probe], verbose=False, dataloader_options=OPTS)
    start = probe.weights[(1, 1, E.on_train_batch_begin)]
    assert state_equal(snapshot(fitted.model), start)
    for name, grad in probe.grads[(1, 2, E.on_train_batch_before_step)].items():
        assert grad is not None
        assert not grad.any(), name
    assert fitted.records["metrics"]["train"][0]["loss"] > 0  # ctx.loss is left as it was


def test_what_is_backpropagated_is_ctx_loss_grad_as_set_before_backward() -> None:
    probe = Probe({E.on_train_batch_before_backward: _scale_loss_grad(3.0)})
    _fit([probe], epochs=1)
    for epoch, it in BATCHES[:2]:
        at_step = probe.grads[(epoch, it, E.on_train_batch_before_step)]
        for name, grad in probe.own[(epoch, it)].items():
            torch.testing.assert_close(at_step[name], 3.0 * grad)


class NoGradProbe(Recorder):
    """Records whether pred and loss carry a graph, and the grads, at valid/predict events."""

    def __init__(self) -> None:
        super().__init__()
        self.graph: list[tuple[Any, bool]] = []
        self.grads: list[Grads] = []

    def record(self, ctx: lw.Context, event: Any) -> None:
        if event in (E.on_valid_batch_after_pred, E.on_predict_batch_end):
            self.graph.append((event, ctx.pred.requires_grad or ctx.pred.grad_fn is not None))
        if event is E.on_valid_batch_after_loss:
            graph = ctx.loss_grad.requires_grad or ctx.loss_grad.grad_fn is not None
            self.graph.append((event, graph))
        if event.value.startswith(("on_valid", "on_predict")):
            self.grads.append(_grads(ctx.model))
        super().record(ctx, event)


def test_validation_builds_no_graph_and_leaves_the_gradients_alone() -> None:
    probe = NoGradProbe()
    x, y = make_data(32)
    _fit([probe], epochs=2, valid_data=(x[:16], y[:16]))
    assert [e for e, _ in probe.graph] == [
        E.on_valid_batch_after_pred,
        E.on_valid_batch_after_loss,
    ] * 2
    assert not any(graph for _, graph in probe.graph)
    assert len(probe.grads) == 2 * 6  # valid_begin, 4 batch events, valid_end; per epoch
    for epoch in range(2):  # within one validation, .grad stays what training left
        first, *rest = probe.grads[6 * epoch : 6 * epoch + 6]
        assert all(_same(first, g) for g in rest)


def test_evaluate_and_predict_build_no_graph() -> None:
    fitted = _fit([], epochs=1)
    x, y = make_data(32, seed=1)
    probe = NoGradProbe()
    fitted.evaluate((x, y), callbacks=[probe], dataloader_options=OPTS)
    fitted.predict(x, callbacks=[probe], dataloader_options=OPTS)
    assert [e for e, _ in probe.graph] == [
        E.on_valid_batch_after_pred,
        E.on_valid_batch_after_loss,
    ] * 2 + [E.on_predict_batch_end] * 2
    assert not any(graph for _, graph in probe.graph)
