"""In-memory data batched by index: the DataLoader's batches, draws and results, bit for bit."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import pytest
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    StackDataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)

import luzwidget as lw
from luzwidget import DataError
from luzwidget.core.data import as_loader, index_loader_of
from luzwidget.core.distributed import World, shard_loader
from luzwidget.core.epochs import epoch_batches
from luzwidget.core.index_loader import IndexLoader
from luzwidget.core.tensor_tree import TensorTree, take
from tests.training_helpers import Net, make_data, make_spec, same_weights

N = 101  # no batch size below divides it, but 1

DATASETS = {
    "tensors": lambda x, y: TensorDataset(x, y),
    "subsets": lambda x, y: Subset(
        Subset(TensorDataset(x, y), range(N - 1, -1, -1)), range(0, 90, 2)
    ),
    "getitems": lambda x, y: StackDataset(x=x, y=y),  # __getitems__, dict samples
}


def _loader(kind: str, gen: bool, **options: Any) -> DataLoader[Any]:
    x, y = make_data(N)
    generator = torch.Generator().manual_seed(5) if gen else None
    return DataLoader(DATASETS[kind](x, y), generator=generator, **options)


def _epochs(loader: Any, n: int = 3) -> tuple[list[Any], torch.Tensor, Any]:
    """Every batch of ``n`` epochs from seed 0, and the RNG states after them."""
    torch.manual_seed(0)
    batches = [batch for _ in range(n) for batch in loader]
    gen = loader.generator
    return batches, torch.get_rng_state(), None if gen is None else gen.get_state()


def _assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for p, q in zip(a, b, strict=True):
        assert type(p) is type(q)
        p, q = (list(p.values()), list(q.values())) if isinstance(p, dict) else (p, q)
        for s, t in zip(p, q, strict=True):
            assert torch.equal(s, t)
            assert (s.dtype, s.stride(), s.device) == (t.dtype, t.stride(), t.device)


@pytest.mark.parametrize(
    ("kind", "shuffle", "drop_last", "gen", "size"),
    list(itertools.product(DATASETS, (False, True), (False, True), (False, True), (1, 8, 45))),
)
def test_batches_and_draws_are_the_dataloaders_bit_for_bit(
    kind: str, shuffle: bool, drop_last: bool, gen: bool, size: int
) -> None:
    options = {"batch_size": size, "shuffle": shuffle, "drop_last": drop_last}
    reference = _loader(kind, gen, **options)
    index = index_loader_of(_loader(kind, gen, **options))
    assert isinstance(index, IndexLoader)
    assert len(index) == len(reference)
    batches, rng, gen_state = _epochs(reference)
    index_batches, index_rng, index_gen_state = _epochs(index)
    _assert_same(batches, index_batches)
    assert torch.equal(rng, index_rng)  # what is drawn after the epochs is drawn alike
    if gen:
        assert torch.equal(gen_state, index_gen_state)


@pytest.mark.parametrize(("shuffle", "drop_last"), list(itertools.product((False, True), repeat=2)))
@pytest.mark.parametrize("kind", DATASETS)
def test_each_rank_gets_what_a_distributed_sampler_gives_it(
    kind: str, shuffle: bool, drop_last: bool
) -> None:
    options = {"batch_size": 4, "shuffle": shuffle, "drop_last": drop_last}
    for rank in range(3):  # 101 samples over 3 ranks: padded
        world = World(rank, 3, rank, torch.device("cpu"), None, "test/")
        reference = shard_loader(_loader(kind, False, **options), world, "data")
        index = shard_loader(index_loader_of(_loader(kind, False, **options)), world, "data")
        assert isinstance(index, IndexLoader)
        assert len(index) == len(reference)
        for epoch in range(3):
            reference.sampler.set_epoch(epoch)
            index.sampler.set_epoch(epoch)  # what Lockstep calls at each epoch's start
            batches, rng, _ = _epochs(reference, 1)
            index_batches, index_rng, _ = _epochs(index, 1)
            _assert_same(batches, index_batches)
            assert torch.equal(rng, index_rng)


# -- whole runs: the same weights and records as on the DataLoader path -----------------------


def _fit(data: Any, valid: Any, epochs: int = 3, **kwargs: Any) -> Any:
    torch.manual_seed(0)
    return make_spec(Net).fit(data, epochs=epochs, valid_data=valid, verbose=False, **kwargs)


def _same_run(a: Any, b: Any) -> None:
    assert same_weights(a.model, b.model)
    assert a.records["metrics"] == b.records["metrics"]


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 8},  # luz's defaults: shuffled, the last partial batch dropped
        {"batch_size": 8, "drop_last": False},
        {"batch_size": 8, "shuffle": False},
        {"batch_size": 8, "shuffle": False, "drop_last": False},
        {"batch_size": 7, "generator": 3},
    ],
)
def test_fit_on_tensors_ends_bit_identical_to_fit_on_a_dataloader(options: dict[str, Any]) -> None:
    (x, y), valid = make_data(N), make_data(30, seed=1)

    def opts() -> dict[str, Any]:  # a generator, if any, shared by both loaders as today
        seed = options.get("generator")
        return {
            **options,
            **({} if seed is None else {"generator": torch.Generator().manual_seed(seed)}),
        }

    today = opts()  # what fit() built before: DataLoaders with the same options
    reference = _fit(
        DataLoader(TensorDataset(x, y), **{"shuffle": True, "drop_last": True, **today}),
        DataLoader(TensorDataset(*valid), **{"drop_last": False, **today, "shuffle": False}),
    )
    fitted = _fit((x, y), valid, dataloader_options=opts())
    assert isinstance(fitted.ctx.train_data, IndexLoader)
    assert isinstance(fitted.ctx.valid_data, IndexLoader)
    _same_run(fitted, reference)


def test_a_valid_fraction_is_index_batched_and_trains_as_a_split_by_hand() -> None:
    x, y = make_data(N)
    torch.manual_seed(0)  # the split draws first, then the model is built
    train, valid = random_split(TensorDataset(x, y), [81, 20])
    spec = make_spec(Net)
    reference = spec.fit(
        DataLoader(train, batch_size=8, shuffle=True, drop_last=True),
        epochs=2,
        valid_data=DataLoader(valid, batch_size=8),
        verbose=False,
    )
    torch.manual_seed(0)
    fitted = spec.fit(
        (x, y), epochs=2, valid_data=0.2, verbose=False, dataloader_options={"batch_size": 8}
    )
    assert isinstance(fitted.ctx.train_data, IndexLoader)
    assert isinstance(fitted.ctx.valid_data, IndexLoader)
    _same_run(fitted, reference)


def test_predict_and_evaluate_on_tensors_match_a_dataloader() -> None:
    (x, y), fitted = make_data(N), _fit(make_data(40), make_data(8, seed=1), epochs=1)
    assert isinstance(as_loader(x, training=False), IndexLoader)
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    assert torch.equal(fitted.predict(x), fitted.predict(loader))
    assert fitted.evaluate((x, y)).records["metrics"] == fitted.evaluate(loader).records["metrics"]


# -- what falls back to a DataLoader ----------------------------------------------------------


class _Rows(TensorDataset):
    """A TensorDataset whose rows are changed on the way: only its own __getitem__ knows."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[i] * 2 for t in self.tensors)


class _Plain(Dataset[Any]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


@pytest.mark.parametrize(
    ("data", "options"),
    [
        (make_data(10), {"num_workers": 1}),
        (make_data(10), {"collate_fn": lambda batch: batch}),
        (make_data(10), {"sampler": [3, 1, 2]}),
        (make_data(10), {"batch_size": None}),
        (_Rows(*make_data(10)), {}),
        (_Plain(), {}),
    ],
    ids=["num_workers", "collate_fn", "sampler", "batch_size=None", "subclass", "no_getitems"],
)
def test_what_only_a_dataloader_does_keeps_the_dataloader(data: Any, options: Any) -> None:
    loader = as_loader(data, training=False, options=options)
    assert type(loader) is DataLoader


@pytest.mark.parametrize(
    "options",
    [{"pin_memory": True}, {"num_workers": 0, "collate_fn": default_collate, "timeout": 0}],
)
def test_options_a_dataloader_would_not_change_the_batches_with_keep_index_batching(
    options: Any,
) -> None:
    loader = as_loader(make_data(10), training=True, options={"batch_size": 2, **options})
    assert isinstance(loader, IndexLoader)
    assert loader.pin_memory is options.get("pin_memory")


def test_a_ready_index_loader_is_used_as_is_and_refuses_options() -> None:
    loader = as_loader(make_data(10), training=True, options={"batch_size": 2})
    assert as_loader(loader, training=False) is loader
    with pytest.raises(lw.ConfigError, match="already a DataLoader"):
        as_loader(loader, training=False, options={"batch_size": 4})


def test_it_pickles_as_a_dataloader_does() -> None:
    loader = as_loader(make_data(10), training=False, options={"batch_size": 4})
    again = pickle.loads(pickle.dumps(loader))
    _assert_same(list(again), list(loader))


def test_length_and_repr_say_what_it_is() -> None:
    loader = as_loader(make_data(10), training=True, options={"batch_size": 4})
    assert len(loader) == 2
    assert repr(loader) == "<IndexLoader over TensorDataset: 2 batches of 4, random>"
    assert "to cpu" in repr(loader.to(torch.device("cpu")))


# -- a batch that fails to load: retried exactly ----------------------------------------------


class _Flaky(StackDataset):  # type: ignore[type-arg]
    """A __getitems__ Dataset whose batch holding sample 20 fails while ``broken``."""

    broken = True

    def __getitems__(self, indices: list[int]) -> list[Any]:
        if 20 in indices and self.broken:
            raise OSError("disk gone")
        return super().__getitems__(indices)


def test_retry_makes_exactly_the_batch_that_failed() -> None:
    x, y = make_data(96)
    data = _Flaky(x, y)
    torch.manual_seed(0)
    run = make_spec(Net).run(data, epochs=2, verbose=False, dataloader_options={"batch_size": 8})
    assert isinstance(run.ctx.train_data, IndexLoader)
    run.resume()
    assert run.state == "error"
    assert "cannot load this batch again" not in str(run.error)
    data.broken = False
    run.retry()
    assert run.state == "done"
    torch.manual_seed(0)
    clean = make_spec(Net).fit(
        DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=True),
        epochs=2,
        verbose=False,
    )
    assert same_weights(run.ctx.model, clean.model)


def test_an_epoch_iterator_offers_the_retry_of_the_loop() -> None:
    loader = as_loader(make_data(10), training=False, options={"batch_size": 4})
    it, replay, limit = epoch_batches(loader)
    first = next(it)
    assert (replay, limit) == (it, "")
    replay.again = True
    _assert_same([next(it)], [first])
    assert len(list(it)) == 2


# -- tensors in any structure ------------------------------------------------------------------


def test_a_tensor_tree_keeps_its_structure_in_every_batch() -> None:
    (x, y), ids = make_data(N), torch.arange(N)
    tree = TensorTree(({"a": x, "ids": ids}, y))
    loader = IndexLoader(tree, 10, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(loader) == 10
    (inputs, target) = batches[3]
    assert set(inputs) == {"a", "ids"}
    assert torch.equal(inputs["ids"], torch.arange(30, 40))
    assert torch.equal(inputs["a"], x[30:40])
    assert torch.equal(target, y[30:40])
    assert torch.equal(take(tree.tree, 7)[0]["a"], x[7])


def test_a_list_holding_a_tuple_keeps_it() -> None:
    x, ids = make_data(N)[0], torch.arange(N)
    (batch,) = IndexLoader(TensorTree([x, (ids,)]), N)
    assert type(batch) is list
    assert type(batch[1]) is tuple
    assert torch.equal(batch[1][0], ids)


def test_a_tensor_tree_refuses_tensors_of_different_lengths() -> None:
    with pytest.raises(DataError, match=r"first dimensions \[5, 4\]"):
        TensorTree((torch.zeros(5, 2), torch.zeros(4)))
    with pytest.raises(DataError, match="got a str"):
        TensorTree((torch.zeros(5), "labels"))


# -- devices ------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("pin", [None, False])
def test_cpu_data_for_a_cuda_model_arrives_there_as_the_dataloaders_batches(pin: Any) -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    options = {"batch_size": 8, "shuffle": True}
    index = index_loader_of(_loader("tensors", False, **options), pin).to(device)
    batches, _, _ = _epochs(_loader("tensors", False, **options))
    index_batches, _, _ = _epochs(index)
    _assert_same([[t.to(device) for t in b] for b in batches], index_batches)


@cuda
def test_data_on_the_gpu_stays_there() -> None:
    x, y = (t.cuda() for t in make_data(N))
    loader = as_loader((x, y), training=True, options={"batch_size": 8})
    assert isinstance(loader, IndexLoader)
    assert all(t.is_cuda for batch in loader for t in batch)
