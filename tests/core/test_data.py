"""Data: every accepted kind becomes batches; valid_data splits; luz's loader defaults."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from luzwidget import ConfigError, DataError, StepError
from luzwidget.core.data import as_dataset, as_loader, loader_len, split_batch, split_valid
from luzwidget.core.index_loader import IndexLoader
from tests.helpers import E, Recorder, batches, make_data, make_spec, snapshot, state_equal


def _batches_seen(data: Any, epochs: int = 1, **kwargs: Any) -> list[tuple[Any, ...]]:
    """(input shape, target shape or None, input dtype) of each training batch the loop saw."""
    seen: list[tuple[Any, ...]] = []

    class Shapes(Recorder):
        def record(self, ctx: Any, event: Any) -> None:
            if event is E.on_train_batch_begin:
                target = None if ctx.target is None else tuple(ctx.target.shape)
                seen.append((tuple(ctx.input.shape), target, ctx.input.dtype))

    spec = make_spec(loss=lambda pred, target: pred.mean())  # works with or without target
    spec.fit(data, epochs=epochs, callbacks=[Shapes()], verbose=False, **kwargs)
    return seen


def test_a_dataloader_is_used_as_is() -> None:
    x, y = make_data(40)
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    assert as_loader(loader, training=True) is loader
    assert _batches_seen(loader) == [((10, 4), (10, 1), torch.float32)] * 4


def test_a_dataset_gets_the_default_loader() -> None:
    x, y = make_data(70)
    seen = _batches_seen(TensorDataset(x, y))
    assert seen == [((32, 4), (32, 1), torch.float32)] * 2  # 70 // 32, last one dropped


def test_a_custom_dataset() -> None:
    class Squares(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.full((4,), float(i)), torch.tensor([float(i * i)])

    assert _batches_seen(Squares()) == [((32, 4), (32, 1), torch.float32)] * 2


@pytest.mark.parametrize("kind", [tuple, list])
def test_tensors_as_a_pair(kind: type) -> None:
    x, y = make_data(64)
    assert _batches_seen(kind([x, y])) == [((32, 4), (32, 1), torch.float32)] * 2


def test_numpy_arrays_float64_become_float32() -> None:
    x, y = make_data(64)
    xn, yn = x.double().numpy(), y.double().numpy()
    assert xn.dtype == np.float64
    assert _batches_seen((xn, yn)) == [((32, 4), (32, 1), torch.float32)] * 2


def test_numpy_integer_labels_keep_their_dtype() -> None:
    ds = as_dataset((np.zeros((8, 3)), np.arange(8)))
    assert isinstance(ds, TensorDataset)
    assert ds.tensors[0].dtype == torch.float32
    assert ds.tensors[1].dtype == torch.int64


def test_non_contiguous_numpy_arrays_are_accepted() -> None:
    arr = np.arange(64 * 8, dtype=np.float64).reshape(64, 8)[:, ::2]
    ds = as_dataset(arr)
    assert torch.equal(ds.tensors[0], torch.from_numpy(np.ascontiguousarray(arr)).float())


def test_a_single_tensor_is_input_without_target() -> None:
    x, _ = make_data(64)
    assert _batches_seen(x) == [((32, 4), None, torch.float32)] * 2


def test_a_list_of_ready_batches_is_iterated_each_epoch() -> None:
    x, y = make_data(48)
    data = batches(x, y, 16)
    assert _batches_seen(data, epochs=2) == [((16, 4), (16, 1), torch.float32)] * 6


def test_tensors_of_different_lengths_are_refused() -> None:
    x, y = make_data(64)
    with pytest.raises(
        DataError,
        match=r"data: the tensors have different lengths \[64, 60\]; "
        r"input and target need one row per sample",
    ):
        as_loader((x, y[:60]), training=True)


def test_a_one_shot_iterator_is_refused() -> None:
    x, y = make_data(48)
    with pytest.raises(
        DataError,
        match=r"data is a one-shot iterator \(list_iterator\); it "
        r"would be empty after the first epoch\. Pass a DataLoader",
    ):
        make_spec().fit(iter(batches(x, y, 16)))

    def gen() -> Any:
        yield from batches(x, y, 16)

    with pytest.raises(DataError, match=r"valid_data is a one-shot iterator \(generator\)"):
        make_spec().fit((x, y), valid_data=gen())


def test_a_pair_of_file_names_fails_at_the_first_batch_saying_what_the_input_was() -> None:
    # a tuple of non-arrays is taken as a list of ready batches
    with pytest.raises(
        StepError,
        match=r"model\(input\) failed before on_train_batch_after_pred "
        r"\(epoch 1, batch 1\).*\ninput: str",
    ):
        make_spec().fit(("x.npy", "y.npy"), verbose=False)


def test_dataloader_options_for_ready_batches_are_refused() -> None:
    x, y = make_data(48)
    with pytest.raises(
        ConfigError,
        match=r"dataloader_options cannot be applied to data, a list "
        r"of ready batches\. Pass a Dataset or tensors",
    ):
        as_loader(batches(x, y, 16), training=True, options={"batch_size": 8})


def test_bad_dataloader_options_name_the_argument() -> None:
    x, y = make_data(48)
    with pytest.raises(ConfigError, match=r"dataloader_options=.*batchsize"):
        as_loader((x, y), training=True, options={"batchsize": 8})


# -- loader defaults --------------------------------------------------------------------------


def test_default_loader_options() -> None:
    x, y = make_data(100)
    run = make_spec().run((x, y), valid_data=(x, y), verbose=False)
    train, valid = run.ctx.train_data, run.ctx.valid_data
    assert isinstance(train, IndexLoader)  # tensors: a DataLoader's batches, taken by index
    assert isinstance(valid, IndexLoader)
    assert (train.batch_size, train.drop_last) == (32, True)
    assert isinstance(train.sampler, RandomSampler)
    assert (valid.batch_size, valid.drop_last) == (32, False)
    assert isinstance(valid.sampler, SequentialSampler)
    assert (len(train), len(valid)) == (3, 4)


def test_dataloader_options_override_defaults_but_validation_is_never_shuffled() -> None:
    x, y = make_data(100)
    opts = {"batch_size": 10, "shuffle": True, "drop_last": False}
    run = make_spec().run((x, y), valid_data=(x, y), verbose=False, dataloader_options=opts)
    assert run.ctx.train_data.batch_size == 10
    assert isinstance(run.ctx.train_data.sampler, RandomSampler)
    assert isinstance(run.ctx.valid_data.sampler, SequentialSampler)
    assert len(run.ctx.train_data) == 10


def test_validation_batches_come_in_order() -> None:
    x, y = make_data(64)
    seen: list[torch.Tensor] = []

    class Inputs(Recorder):
        def record(self, ctx: Any, event: Any) -> None:
            if event is E.on_valid_batch_begin:
                seen.append(ctx.input)

    make_spec().fit((x, y), epochs=1, valid_data=(x, y), callbacks=[Inputs()], verbose=False)
    assert torch.equal(torch.cat(seen), x)


# -- valid_data as a fraction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "sizes"),
    [(100, 0.2, (80, 20)), (10, 0.25, (8, 2)), (3, 0.5, (1, 2)), (50, 0.01, None)],
)
def test_valid_fraction_split_sizes(n: int, fraction: float, sizes: Any) -> None:
    x, y = make_data(n)
    if sizes is None:
        with pytest.raises(
            ConfigError,
            match=r"valid_data=0\.01 of 50 samples leaves 0 for "
            r"validation and 50 for training; both need at least one",
        ):
            split_valid((x, y), fraction)
        return
    train, valid = split_valid((x, y), fraction)
    assert (len(train), len(valid)) == sizes
    assert isinstance(train, Subset)
    assert isinstance(valid, Subset)
    assert sorted([*train.indices, *valid.indices]) == list(range(n))


def test_valid_fraction_in_fit_builds_both_loaders() -> None:
    x, y = make_data(100)
    run = make_spec().run((x, y), valid_data=0.2, verbose=False)
    assert len(run.ctx.train_data.dataset) == 80
    assert len(run.ctx.valid_data.dataset) == 20
    assert isinstance(run.ctx.valid_data.sampler, SequentialSampler)


def test_valid_fraction_of_a_dataloader_is_refused() -> None:
    x, y = make_data(100)
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    with pytest.raises(
        ConfigError,
        match=r"valid_data=0\.2 splits a Dataset or tensors, but data "
        r"is a DataLoader\. Split it yourself",
    ):
        make_spec().fit(loader, valid_data=0.2)


# -- batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ((1, 2), (1, 2)),
        ([1, 2, 3], (1, 2)),
        ((1,), (1, None)),
        ([1], (1, None)),
        ("tensor", ("tensor", None)),
        ({"x": 1}, ({"x": 1}, None)),
    ],
)
def test_split_batch(batch: Any, expected: tuple[Any, Any]) -> None:
    assert split_batch(batch) == expected


def test_loader_len() -> None:
    assert loader_len([1, 2, 3]) == 3
    assert loader_len(x for x in range(3)) is None


# -- iterable datasets (issue 9, point 1) -----------------------------------------------------


class _Stream(IterableDataset):  # type: ignore[type-arg]
    """An IterableDataset without a length: ``n`` samples of (x, y)."""

    def __init__(self, n: int = 70) -> None:
        self.x, self.y = make_data(n)

    def __iter__(self) -> Any:
        return iter(zip(self.x, self.y, strict=True))


def test_an_iterable_dataset_trains_validates_and_predicts() -> None:
    spec = make_spec()
    fitted = spec.fit(_Stream(70), epochs=2, valid_data=_Stream(20), verbose=False)
    assert len(fitted.records["metrics"]["valid"]) == 2
    assert fitted.predict(_Stream(45)).shape == (45, 1)  # order kept, nothing dropped


def test_an_iterable_dataset_is_not_shuffled_and_keeps_its_last_batch() -> None:
    assert _batches_seen(_Stream(70)) == [((32, 4), (32, 1), torch.float32)] * 2 + [
        ((6, 4), (6, 1), torch.float32)
    ]


def test_shuffling_an_iterable_dataset_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"IterableDataset \(_Stream\).*cannot shuffle"):
        as_loader(_Stream(), training=True, options={"shuffle": True})


def test_valid_fraction_of_an_iterable_dataset_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"valid_data=0\.2 .* an IterableDataset \(_Stream\)"):
        make_spec().fit(_Stream(), epochs=1, valid_data=0.2, verbose=False)


def test_progress_of_an_iterable_dataset_has_no_total(capsys: pytest.CaptureFixture[str]) -> None:
    make_spec().fit(_Stream(70), epochs=1, verbose=True)
    assert "Train metrics" in capsys.readouterr().err


def test_the_html_bar_without_a_length_is_indeterminate() -> None:
    from luzwidget.callbacks.progress import _HtmlBar

    bar = _HtmlBar("Train", None)
    bar.n = 3
    text = bar._html("")
    assert "max=" not in text
    assert "Train 3 [" in text


# -- vague errors, silently dropped options (issue 9, points 8, 15, 17) -----------------------


def test_predict_warns_that_shuffle_is_ignored() -> None:
    x, y = make_data(40)
    fitted = make_spec().fit((x, y), epochs=1, verbose=False)
    with pytest.warns(UserWarning, match=r"'shuffle': True\}? is ignored for predict\(\)"):
        out = fitted.predict(x, dataloader_options={"shuffle": True})
    assert torch.equal(out, fitted.predict(x))  # the order is kept


def test_an_empty_dataset_is_named() -> None:
    x, y = make_data(0)
    with pytest.raises(DataError, match=r"data is an empty TensorDataset \(0 samples\)"):
        make_spec().fit((x, y), epochs=1, verbose=False)


@pytest.mark.parametrize("size", [0, -1, 2.5, "8"])
def test_a_bad_batch_size_is_named(size: Any) -> None:
    x, y = make_data(40)
    with pytest.raises(ConfigError, match=r"batch_size must be a positive int, got"):
        make_spec().fit((x, y), epochs=1, verbose=False, dataloader_options={"batch_size": size})


def test_a_dataloader_value_error_keeps_its_cause() -> None:
    x, y = make_data(40)
    with pytest.raises(ConfigError, match=r"dataloader_options=\{'num_workers': -1\}") as err:
        as_loader((x, y), training=True, options={"num_workers": -1})
    assert isinstance(err.value.__cause__, ValueError)


def test_a_dataset_smaller_than_a_batch_trains_its_partial_batch_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    x, y = make_data(10)
    run = make_spec().run((x, y), epochs=1, verbose=False)
    said = capsys.readouterr().err
    assert said.count("the last (partial) batch is kept") == 1
    assert "data has 10 samples, fewer than batch_size=32" in said
    assert run.ctx.train_data.drop_last is False
    run.resume()
    assert run.state == "done"
    assert run.ctx.iter == 1  # one batch of 10 was trained
    assert run.ctx.train_data.batch_size == 32


def test_an_epoch_of_no_batches_is_refused_unless_no_epoch_runs() -> None:
    x, y = make_data(10)
    ready = DataLoader(TensorDataset(x, y), batch_size=32, drop_last=True)
    with pytest.raises(ConfigError, match=r"data has 10 samples.*\{'drop_last': False\}"):
        as_loader(ready, training=True)
    with pytest.raises(ConfigError, match=r"10 samples, fewer than batch_size=32.*0 batches"):
        make_spec().run(ready, epochs=1, verbose=False)
    with pytest.raises(DataError, match=r"0 batches"):
        as_loader([], training=True)
    fitted = make_spec().fit(ready, epochs=0, verbose=False)  # luz trains nothing: no refusal
    assert fitted.ctx.epoch == 0
    assert "metrics" not in make_spec().fit([], epochs=0, verbose=False).records


# -- a batch that failed to load: retry loads it again, skip drops it (issue 9.13) ------------

_X, _Y = make_data(96)


class _Flaky(Dataset):  # type: ignore[type-arg]
    """96 samples; sample 20 raises while ``broken``. ``loaded`` lists every index fetched."""

    def __init__(self) -> None:
        self.broken = True
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return 96

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i == 20 and self.broken:
            raise OSError("disk gone")
        self.loaded.append(i)
        return _X[i], _Y[i]


class _Inputs(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def on_train_batch_begin(self, ctx: Any) -> None:
        self.inputs.append(ctx.input)


def _flaky_run(dataset: Dataset[Any], epochs: int = 2, **loader: Any) -> tuple[Any, _Inputs]:
    seen = _Inputs()
    data = DataLoader(dataset, batch_size=8, shuffle=True, **loader)
    torch.manual_seed(0)
    run = make_spec().run(data, epochs=epochs, verbose=False, callbacks=[seen])
    return run, seen


def _clean() -> tuple[Any, _Inputs]:
    data = _Flaky()
    data.broken = False
    run, seen = _flaky_run(data)
    run.resume()
    return run, seen


def test_retry_loads_exactly_the_batch_that_failed() -> None:
    data = _Flaky()
    run, seen = _flaky_run(data)
    run.resume()
    assert run.state == "error"
    assert "cannot load this batch again" not in str(run.error)
    data.broken = False
    run.retry()
    assert run.state == "done"
    clean, clean_seen = _clean()
    assert len(seen.inputs) == 24  # 12 batches a epoch, none lost
    assert all(torch.equal(a, b) for a, b in zip(seen.inputs, clean_seen.inputs, strict=True))
    assert state_equal(snapshot(run.ctx.model), snapshot(clean.ctx.model))


def test_skip_drops_exactly_the_batch_that_failed() -> None:
    data = _Flaky()
    run, seen = _flaky_run(data, epochs=1)
    run.resume()
    run.skip()
    assert run.state == "done"
    _, clean_seen = _clean()
    epoch1 = clean_seen.inputs[:12]
    failed = next(
        k for k, x in enumerate(epoch1) if any(torch.equal(x[j], _X[20]) for j in range(8))
    )
    kept = [x for k, x in enumerate(epoch1) if k != failed]
    assert len(seen.inputs) == 11
    assert all(torch.equal(a, b) for a, b in zip(seen.inputs, kept, strict=True))


def test_a_loader_moved_to_a_device_survives_a_failed_batch() -> None:
    from luzwidget.core.accelerator import _DeviceLoader

    data = _Flaky()
    run, seen = _flaky_run(data)
    run.ctx.train_data = _DeviceLoader(run.ctx.train_data, torch.device("cpu"))
    run.resume()
    assert run.state == "error"
    data.broken = False
    run.retry()
    assert run.state == "done"
    assert len(seen.inputs) == 24


def test_where_a_failed_batch_cannot_be_loaded_again_the_fault_says_so() -> None:
    class Stream(IterableDataset):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            yield _X[0], _Y[0]
            raise OSError("stream gone")

    run = make_spec().run(Stream(), epochs=1, verbose=False)
    run.resume()
    assert "an IterableDataset cannot be rewound" in str(run.error)
    data = _Flaky()
    run, _ = _flaky_run(data, epochs=1, num_workers=1)
    run.resume()
    assert run.state == "error"
    assert "with num_workers > 0" in str(run.error)
    data.broken = False
    run.retry()  # goes on with the next batch, as the fault said
    assert run.state == "done"
