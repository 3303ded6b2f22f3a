"""Batches of any structure: the split, call and count rules, model outputs, the dict collate
and structured tensor data (luzwidget.core.batches, luzwidget.core.collate)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.accelerator import to_device
from luzwidget.core.batches import (
    call,
    call_error,
    count,
    left_out,
    output_loss,
    prediction,
    split_batch,
    takes_labels,
)
from luzwidget.core.collate import collate, is_map_style, is_structured, structured
from luzwidget.core.data import as_loader
from luzwidget.core.exceptions import DataError
from luzwidget.core.index_loader import IndexLoader

T = torch.zeros


class Graphs:
    """A PyG-like batch: an object with tensors, ``.y`` and ``.to()``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.moved_to: Any = None

    def to(self, device: Any, non_blocking: bool = False) -> Graphs:
        self.moved_to = device
        return self


class Output(OrderedDict):  # type: ignore[type-arg]
    """A ModelOutput's shape: a mapping with attributes and to_tuple()."""

    def __getattr__(self, name: str) -> Any:
        return self.get(name)

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())


class Pair(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ((1, 2, 3), (1, 2)),
        ([1], (1, None)),
        (Pair(1, 2), (1, 2)),  # type: ignore[arg-type]
        ({"input_ids": 1, "labels": 2, "label": 3}, ({"input_ids": 1, "labels": 2, "label": 3}, 2)),
        ({"image": 1, "label": 3}, ({"image": 1, "label": 3}, 3)),
        ({"x": 1}, ({"x": 1}, None)),
        ("text", ("text", None)),
    ],
)
def test_split_rule(batch: Any, expected: tuple[Any, Any]) -> None:
    assert split_batch(batch) == expected


def test_an_object_batch_is_the_input_and_its_y_the_target() -> None:
    g = Graphs(T(7, 3), T(2))
    assert split_batch(g) == (g, g.y)
    tensor = T(3)
    assert split_batch(tensor)[1] is None


def test_an_object_with_to_moves_itself() -> None:
    g = Graphs(T(2), T(2))
    assert to_device((g, {"a": g}), torch.device("cpu"))[0] is g
    assert g.moved_to == torch.device("cpu")


@pytest.mark.parametrize(
    ("parts", "n"),
    [
        ((T(5, 2),), 5),
        (({"a": T(5, 2), "b": T(5)},), 5),
        ((None, (T(3, 4), T(3))), 3),
        (((T(()), T(6, 2)),), 6),  # a 0-dim tensor has no samples to count
        (([{"boxes": T(9, 4)}, {"boxes": T(2, 4)}],), 2),  # per-sample targets: counted
        ((["a", "b", "c"],), 3),
        ((None, None), 1),
        ((Output(loss=T(()), logits=T(4, 3)),), 4),
    ],
)
def test_count_rule(parts: tuple[Any, ...], n: int) -> None:
    assert count(*parts) == n


class Two(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Keywords(nn.Module):
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: Any = None
    ) -> Any:
        return (input_ids * attention_mask, labels)


class Everything(nn.Module):
    def forward(self, **batch: Any) -> Any:
        return sorted(batch)


def test_call_rule() -> None:
    a, b = torch.ones(2), torch.ones(2) * 2
    assert torch.equal(call(Two(), (a, b)), a + b)
    assert torch.equal(call(Two(), [a, b]), a + b)
    assert torch.equal(call(nn.Identity(), a), a)
    batch = {"input_ids": a, "attention_mask": b, "label": T(2), "text": ["x", "y"]}
    out, labels = call(Keywords(), batch)
    assert torch.equal(out, a * b)
    assert labels is batch["label"]  # "label" goes in as labels
    assert call(Everything(), batch) == ["attention_mask", "input_ids", "label", "text"]
    assert (
        "['text'] are not parameters of Keywords.forward(input_ids, attention_mask, labels=...)"
        in left_out(Keywords(), batch)
    )
    assert left_out(Everything(), batch) == ""


def test_a_call_that_does_not_fit_is_explained_and_one_that_fails_inside_is_not() -> None:
    x = torch.ones(2)
    with pytest.raises(TypeError) as err:
        call(Two(), x)
    explained = call_error(Two(), x, err.value)
    assert explained is not None
    assert (
        "Two.forward(a, b) cannot be called with the batch's input, a tensor of shape (2,)"
        in str(explained)
    )
    assert "((a, b), target)" in str(explained)
    with pytest.raises(TypeError) as err:
        call(Keywords(), {"ids": x})
    assert "a dict input is passed as keyword arguments, by name" in str(
        call_error(Keywords(), {"ids": x}, err.value)
    )

    class Inside(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + "no"  # type: ignore[operator]

    with pytest.raises(TypeError) as err:
        call(Inside(), x)
    assert call_error(Inside(), x, err.value) is None  # the signature fits: the user's bug


def test_model_outputs() -> None:
    out = Output(loss=torch.tensor(0.5), logits=T(4, 3))
    assert prediction(out) is out["logits"]
    plain = {"logits": T(2)}  # a plain dict is the user's structure: left alone
    assert prediction(plain) is plain
    assert output_loss(out, None) is out["loss"]
    with pytest.raises(ValueError, match=r"no loss: setup\(\) has no loss=.*holds \['logits'\]"):
        output_loss(Output(logits=T(2)), None)
    assert takes_labels(Keywords())
    assert takes_labels(Everything())
    assert not takes_labels(Two())


def test_a_module_without_loss_that_cannot_compute_one_is_refused_at_setup() -> None:
    with pytest.raises(lw.ConfigError, match=r"no loss: .*as output\.loss \(as Hugging Face"):
        lw.setup(nn.Linear(2, 1), optimizer=torch.optim.SGD).fit((T(4, 2), T(4, 1)), verbose=False)


def test_the_dict_collate_stacks_lists_per_key() -> None:
    rows = [
        {"input_ids": [1, 2, 3], "label": 0, "text": "a"},
        {"input_ids": [4, 5, 6], "label": 1, "text": "b"},
    ]
    batch = collate(rows)
    assert torch.equal(batch["input_ids"], torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert torch.equal(batch["label"], torch.tensor([0, 1]))
    assert batch["text"] == ["a", "b"]
    assert torch.equal(collate([(T(2), 1), (T(2), 2)])[1], torch.tensor([1, 2]))  # default_collate
    ragged = [{"input_ids": [1, 2]}, {"input_ids": [1, 2, 3]}]
    with pytest.raises(
        DataError, match=r"'input_ids' are sequences of different lengths \(2 to 3\).*Pad"
    ):
        collate(ragged)


class Rows:
    """A map-style dataset that is not a torch Dataset (as datasets.Dataset is not)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": [i, i + 1], "labels": i % 2}


def test_a_map_style_object_is_a_dataset_batched_by_the_dict_collate() -> None:
    assert is_map_style(Rows(3))
    assert not is_map_style([1, 2])
    assert not is_map_style({"a": 1})
    loader = as_loader(Rows(10), training=False, options={"batch_size": 4})
    batches = list(loader)
    assert [b["input_ids"].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert torch.equal(batches[0]["labels"], torch.tensor([0, 1, 0, 1]))


def test_structured_tensor_data() -> None:
    a, b, y = torch.arange(10.0).reshape(5, 2), torch.arange(5), torch.arange(5) * 2
    assert is_structured(((a, b), y))
    assert is_structured({"a": a, "y": y})
    assert not is_structured((a, y))  # plain tensors: a TensorDataset, as before
    assert not is_structured([(a, b), y])  # a list: ready batches
    ds = structured(((a, b), {"y": y}), lambda t, _: t)
    assert len(ds) == 5
    (ai, bi), target = ds[2]
    assert torch.equal(ai, a[2])
    assert int(bi) == 2
    assert int(target["y"]) == 4
    with pytest.raises(DataError, match=r"different lengths \[4, 5\]"):
        structured(((a, b[:4]), y), lambda t, _: t)
    loader = as_loader(((a, b), y), training=False, options={"batch_size": 2})
    assert isinstance(loader, IndexLoader)  # batched by index, the structure kept
    (xa, xb), yb = next(iter(loader))
    assert xa.shape == (2, 2)
    assert xb.shape == (2,)
    assert yb.shape == (2,)
