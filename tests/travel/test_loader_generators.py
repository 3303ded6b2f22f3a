"""A loader with its own generator (``DataLoader(..., generator=g)``, or a sampler's): its
order is part of the run's state, kept by snapshots and checkpoints, so a rewind or a resume
draws the same order as a run that never went back."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import luzwidget as lw
from luzwidget.core.generators import loader_generators
from luzwidget.storage.checkpoint import capture, restore
from tests.training_helpers import Net, make_data, make_spec, same_weights


def _loader(kind: str) -> DataLoader:
    x, y = make_data(64)
    g = torch.Generator().manual_seed(7)
    dataset = TensorDataset(x, y)
    if kind == "loader":
        return DataLoader(dataset, batch_size=8, shuffle=True, generator=g)
    return DataLoader(dataset, batch_size=8, sampler=RandomSampler(dataset, generator=g))


def _run(kind: str) -> lw.Run:
    torch.manual_seed(0)
    return make_spec(Net).run(_loader(kind), epochs=3, verbose=False)


def test_a_rewind_replays_the_order_a_loaders_own_generator_draws() -> None:
    for kind in ("loader", "sampler"):
        straight = _run(kind)
        straight.resume()
        rewound = _run(kind)
        rewound.step("epoch")
        rewound.step("epoch")
        rewound.rewind(epoch=1)
        rewound.resume()
        assert same_weights(rewound.ctx.model, straight.ctx.model), kind


def test_a_checkpoint_holds_and_restores_the_loaders_own_generators() -> None:
    run = _run("loader")
    run.step("epoch")
    (gen,) = loader_generators(run.ctx.train_data)
    state = capture(run.ctx)
    at_epoch_1 = gen.get_state()
    assert torch.equal(state["loaders"]["train"][0], at_epoch_1)
    run.step("epoch")  # the next epoch draws its order from the generator
    assert not torch.equal(gen.get_state(), at_epoch_1)
    restore(run.ctx, state, "a test checkpoint")
    assert torch.equal(gen.get_state(), at_epoch_1)
