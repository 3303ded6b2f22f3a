"""Gradient accumulation with a per-step OneCycleLR: ``fit(..., accumulate=4)`` equals the
hand-written loop bit for bit, through a retry, a rewind, a resume after a crash, a
custom step and DDP's no_sync.

Glue left to the user: none (no accumulation callback; OneCycleLR's total_steps is filled in).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as nnf
from torch.optim.lr_scheduler import OneCycleLR
from torch.utils.data import DataLoader, TensorDataset

import luzwidget as lw
from luzwidget.callbacks import AutoResume, GradientClip, LRScheduler
from tests.workloads.battery import Workload, check_dashboard, same, weights

K, BS, N, EPOCHS = 4, 8, 80, 2  # 10 batches an epoch: groups of 4, 4 and 2


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OwnStep(MLP):
    """The same training, as a custom step that calls the pieces."""

    def step(self, ctx: lw.Context) -> None:
        ctx.pred = self(ctx.input)
        loss = nnf.mse_loss(ctx.pred, ctx.target)
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            ctx.backward(loss)
            ctx.step_opt(opt)
        ctx.loss = loss.detach()


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 5, generator=g)
    return x, x.sum(1, keepdim=True) + 0.1 * torch.randn(N, 1, generator=g)


def schedule() -> LRScheduler:
    return LRScheduler(OneCycleLR, call_on="on_train_batch_end", max_lr=0.05)


def workload(module: type[nn.Module] = MLP, **fit: Any) -> Workload:
    spec = lw.setup(module, loss=nn.MSELoss(), optimizer=torch.optim.Adam)
    callbacks = [schedule(), *fit.pop("callbacks", [])]
    opts = {"accumulate": K, "callbacks": callbacks, "dataloader_options": {"batch_size": BS}}
    return Workload(spec.set_opt_hparams(lr=1e-3), data(), {**opts, **fit}, epochs=EPOCHS)


def hand_loop() -> tuple[nn.Module, torch.optim.Optimizer]:
    """What a user writes without luzwidget."""
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(*data()), batch_size=BS, shuffle=True, drop_last=True)
    steps = EPOCHS * math.ceil(len(loader) / K)
    sched = OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    for _ in range(EPOCHS):
        n = len(loader)
        for i, (x, y) in enumerate(loader, 1):
            start = (i - 1) // K * K + 1
            end = min(start + K - 1, n)
            if i == start:
                opt.zero_grad()
            loss = nnf.mse_loss(model(x), y)
            (loss / (end - start + 1)).backward()
            if i == end:
                opt.step()
                sched.step()
    return model, opt


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, torch.Tensor], float]:
    model, opt = hand_loop()
    return weights(model), opt.param_groups[0]["lr"]


def check(run: lw.Run, reference: tuple[dict[str, torch.Tensor], float]) -> None:
    assert run.state == "done", (run.state, run.error)
    assert same(weights(run.ctx.model), reference[0])
    opt = run.ctx.optimizers["opt"]
    assert opt.param_groups[0]["lr"] == reference[1]
    assert all(s["step"] == EPOCHS * 3 for s in opt.state.values())  # 3 steps an epoch


def test_equals_the_hand_loop(reference: Any) -> None:
    class Count(lw.Callback):
        n = 0

        def on_train_batch_before_step(self, ctx: lw.Context) -> None:
            self.n += 1

    counter = Count()
    check(workload(callbacks=[counter]).trained(), reference)
    assert counter.n == EPOCHS * 3  # no step, no before_step


def test_a_custom_step_accumulates_the_same(reference: Any) -> None:
    check(workload(OwnStep).trained(), reference)


@pytest.mark.parametrize(
    ("batch", "event"), [(3, "on_train_batch_before_backward"), (4, "on_train_batch_before_step")]
)
def test_a_retried_batch_inside_a_group_is_exact(reference: Any, batch: int, event: str) -> None:
    class FailOnce(lw.Callback):
        failed = False

    def fail(self: FailOnce, ctx: lw.Context) -> None:
        if ctx.epoch == 2 and ctx.iter == batch and not self.failed:
            self.failed = True
            raise RuntimeError("flaky")

    setattr(FailOnce, event, fail)
    run = workload(callbacks=[FailOnce()]).run()
    run.resume()
    assert run.state == "error"
    run.retry()  # redoes the failed step and goes on
    check(run, reference)


def test_rewind_inside_an_epoch_and_a_branch_are_exact(reference: Any) -> None:
    run = workload().trained()
    run.rewind(batches=7)  # epoch 2, batch 3: inside its first group
    assert (run.ctx.epoch, run.ctx.iter) == (2, 3)
    run.resume()
    check(run, reference)
    branch = run.branch(epoch=1)
    assert branch.ctx.accumulate == K
    branch.resume()
    check(branch, reference)


def test_resume_after_a_crash_is_exact(reference: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.pt"

    class Crash(lw.Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            if ctx.epoch == 2 and ctx.iter == 7:
                raise KeyboardInterrupt  # a kill after batch 7: saved at 4, the group's end

    w = workload(callbacks=[AutoResume(path, every_n_batches=3), Crash()])
    torch.manual_seed(0)
    w.spec.fit(w.data, EPOCHS, verbose=False, **w.fit)
    assert path.exists()
    w = workload(callbacks=[AutoResume(path, every_n_batches=3)])
    torch.manual_seed(123)  # a new process: nothing of the first is left but the file
    fitted = w.spec.fit(w.data, EPOCHS, verbose=False, **w.fit)
    check(fitted.run, reference)


def test_gradient_clip_clips_the_summed_gradients_once_per_step() -> None:
    clips: list[float] = []

    class Spy(GradientClip):
        def on_train_batch_before_step(self, ctx: lw.Context) -> None:
            super().on_train_batch_before_step(ctx)
            clips.append(float(self.last_norm))  # type: ignore[arg-type]

    workload(callbacks=[Spy(max_norm=1e6)]).trained()
    assert len(clips) == EPOCHS * 3


def test_under_ddp_only_a_groups_last_batch_synchronises(reference: Any) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group exists already")
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:0", rank=0, world_size=1)
    try:
        seen: list[bool] = []

        class Sync(lw.Callback):
            def on_train_batch_after_pred(self, ctx: lw.Context) -> None:
                seen.append(ctx.model.require_backward_grad_sync)

        ddp = lw.Accelerator(strategy="ddp", cpu=True, shard_data=False)  # the same order
        run = workload(callbacks=[Sync()], accelerator=ddp).trained()
        assert isinstance(run.ctx.model, nn.parallel.DistributedDataParallel)
        assert seen[:10] == [False, False, False, True] * 2 + [False, True]
        assert same(weights(run.ctx.model.module), reference[0])
    finally:
        dist.destroy_process_group()


def test_the_dashboard_shows_optimizer_steps_and_batches() -> None:
    msg = check_dashboard(workload())
    assert msg["progress"]["opt_steps"] == [0, 3]  # after batch 1 of 10: no step yet
    assert msg["progress"]["n_batches"] == 10


def test_accumulate_must_be_a_positive_int() -> None:
    with pytest.raises(lw.ConfigError, match=r"accumulate=0: expected an int >= 1"):
        workload(accumulate=0).run()


def test_a_loader_without_length_steps_its_last_group_after_its_last_batch() -> None:
    class Stream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            x, y = data()
            yield from zip(x, y, strict=True)

    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = list(DataLoader(Stream(), batch_size=BS))  # 10, in order: groups of 4, 4, 2
    for start in (0, 4, 8):
        group = batches[start : start + K]
        opt.zero_grad()
        for x, y in group:
            (nnf.mse_loss(model(x), y) / len(group)).backward()
        opt.step()
    spec = lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1)
    torch.manual_seed(0)
    fitted = spec.fit(
        Stream(), 1, verbose=False, accumulate=K, dataloader_options={"batch_size": BS}
    )
    assert same(weights(fitted.model), weights(model))
