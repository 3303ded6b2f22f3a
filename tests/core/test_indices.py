"""ctx.indices (the dataset indices of the current batch) and per-sample losses on demand
(luzwidget.core.indices, luzwidget.core.samples)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as nnf
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    TensorDataset,
    WeightedRandomSampler,
)

import luzwidget as lw
from tests.training_helpers import Net, make_data, make_spec

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


class Seen(lw.Callback):
    """Keeps ``ctx.indices`` and the input at every training and validation batch's end."""

    def __init__(self) -> None:
        self.train: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.valid: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        self.train.append((ctx.indices, ctx.input.clone()))

    def on_valid_batch_end(self, ctx: lw.Context) -> None:
        self.valid.append((ctx.indices, ctx.input.clone()))


def weights(run: lw.Run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.ctx.model.state_dict().items()}


def test_shuffled_tensors_split_by_valid_data_index_the_data_as_given() -> None:
    x, y = make_data(64)
    seen = Seen()
    torch.manual_seed(0)
    make_spec(Net).fit((x, y), 2, valid_data=0.25, callbacks=[seen], **OPTIONS)
    for indices, batch in seen.train + seen.valid:
        assert indices.dtype == torch.int64
        assert torch.equal(x[indices], batch)  # the rows of what fit() was given
    epoch = torch.cat([i for i, _ in seen.train[:6]])
    assert len(set(epoch.tolist())) == 48  # a permutation of the 48 training rows


def test_a_dataloaders_indices_are_what_its_sampler_drew() -> None:
    x, y = make_data(40)
    weights_ = torch.rand(40)
    sampler = WeightedRandomSampler(weights_, 40, generator=torch.Generator().manual_seed(3))
    drawn = list(
        BatchSampler(
            WeightedRandomSampler(weights_, 40, generator=torch.Generator().manual_seed(3)),
            8,
            False,
        )
    )  # the same sampler, its own generator seeded alike: the draws the run will see
    seen = Seen()
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler)
    make_spec(Net).fit(loader, 1, callbacks=[seen], verbose=False)
    assert [i.tolist() for i, _ in seen.train] == drawn


def test_reading_the_indices_changes_no_batch_and_no_draw() -> None:
    def trained(callbacks: list[Any]) -> lw.Run:
        torch.manual_seed(0)
        run = make_spec(Net).run(make_data(64), 2, callbacks=callbacks, **OPTIONS)
        run.resume()
        return run

    plain, read = trained([]), trained([Seen()])
    assert all(
        torch.equal(a, b)
        for a, b in zip(weights(plain).values(), weights(read).values(), strict=False)
    )


class FailsOnce(Dataset[Any]):
    """Raises the first time sample ``bad`` is read."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bad: int) -> None:
        self.x, self.y, self.bad, self.failed = x, y, bad, False

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i == self.bad and not self.failed:
            self.failed = True
            raise OSError("a flaky read")
        return self.x[i], self.y[i]


def test_exact_after_a_failed_load_and_its_retry() -> None:
    x, y = make_data(32)
    torch.manual_seed(0)
    run = make_spec(Net).run(FailsOnce(x, y, bad=5), 1, **OPTIONS)
    run.resume()
    assert run.state == "error"
    before = run.ctx.indices  # the batch before the one that failed is still current
    assert torch.equal(x[before], run.ctx.input)
    assert 5 not in before.tolist()
    run.breakpoints.add("on_train_batch_end")
    run.retry(background=False)  # the same indices loaded again
    assert run.state == "paused"
    assert 5 in run.ctx.indices.tolist()
    assert torch.equal(x[run.ctx.indices], run.ctx.input)


def test_exact_after_a_retry_at_a_pause_and_a_rewind() -> None:
    x, y = make_data(64)
    torch.manual_seed(0)
    run = make_spec(Net).run(TensorDataset(x, y), 2, **OPTIONS)
    run.step("batch", n=11)
    indices = run.ctx.indices
    assert torch.equal(x[indices], run.ctx.input)
    run.step("batch", n=3)
    run.rewind(run.snapshots[-2])  # the pause at batch 11, replayed from its epoch's start
    assert torch.equal(run.ctx.indices, indices)


def test_none_where_the_loader_cannot_tell() -> None:
    class Stream(IterableDataset[Any]):
        def __iter__(self) -> Any:
            x, y = make_data(16)
            yield from zip(x, y, strict=True)

    run = make_spec(Net).run(Stream(), 1, **OPTIONS)
    assert run.ctx.indices is None  # before any batch
    run.step("batch")
    assert run.ctx.indices is None


# -- per-sample losses -------------------------------------------------------------------


def test_per_sample_cross_entropy_at_the_end_of_a_batch() -> None:
    torch.manual_seed(0)
    run = make_spec(Net).run(make_data(32), 1, **OPTIONS)
    run.step("batch")
    losses = run.sample_losses()
    assert losses is not None
    expected = nnf.cross_entropy(run.ctx.pred, run.ctx.target, reduction="none")
    assert torch.allclose(losses, expected)
    assert torch.allclose(losses.mean(), run.ctx.loss)


def test_before_the_forward_a_quiet_forward_changes_no_draw_and_no_buffer() -> None:
    class Norm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5))
            self.head = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    def run_to_batch_begin(look: bool) -> lw.Run:
        torch.manual_seed(0)
        run = make_spec(Norm).run(make_data(32), 1, **OPTIONS)
        run.step("batch")
        run.step(lw.Event.on_train_batch_begin)
        if look:
            assert run.sample_losses() is not None
        run.resume()
        return run

    looked, plain = run_to_batch_begin(True), run_to_batch_begin(False)
    assert all(
        torch.equal(a, b)
        for a, b in zip(weights(looked).values(), weights(plain).values(), strict=False)
    )


def test_a_loss_without_reduction_is_called_sample_by_sample() -> None:
    torch.manual_seed(0)
    spec = lw.setup(
        Net, loss=lambda p, t: nnf.cross_entropy(p, t) * 2, optimizer=torch.optim.SGD
    ).set_opt_hparams(lr=0.1)
    run = spec.run(make_data(16), 1, **OPTIONS)
    run.step("batch")
    losses = run.sample_losses()
    assert losses is not None
    assert torch.allclose(
        losses, 2 * nnf.cross_entropy(run.ctx.pred, run.ctx.target, reduction="none")
    )


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 2), nn.Linear(2, 2)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return self.a(image) + self.b(extra)


def test_dict_batches_split_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    data = {
        "image": torch.randn(16, 3, generator=g),
        "extra": torch.randn(16, 2, generator=g),
        "labels": torch.randint(0, 2, (16,), generator=g),
    }
    torch.manual_seed(0)
    spec = lw.setup(TwoInputs, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    run = spec.set_opt_hparams(lr=0.1).run(data, 1, **OPTIONS)
    run.step(lw.Event.on_train_batch_begin)
    losses = run.sample_losses()  # before the forward: a quiet one
    assert losses is not None
    assert losses.shape == (8,)
    indices = run.ctx.indices
    model = run.ctx.model
    with torch.no_grad():
        pred = model(data["image"][indices], data["extra"][indices])
    expected = nnf.cross_entropy(pred, data["labels"][indices], reduction="none")
    assert torch.allclose(losses, expected)


@pytest.mark.parametrize("event", ["on_train_batch_after_pred", "on_train_batch_end"])
def test_indices_and_losses_agree_with_the_batch(event: str) -> None:
    x, y = make_data(32)
    torch.manual_seed(0)
    run = make_spec(Net).run((x, y), 1, **OPTIONS)
    run.step(event)
    indices, losses = run.ctx.indices, run.sample_losses()
    assert losses is not None
    assert torch.equal(y[indices], run.ctx.target)
    assert len(losses) == len(indices) == 8
