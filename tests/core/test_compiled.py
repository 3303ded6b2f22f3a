"""core.compiled: the module inside torch.compile's wrapper, its names, counted eager holds
and file keys that differ only by ``_orig_mod``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch._dynamo

from luzwidget.core.compiled import (
    align_keys,
    clean_name,
    compiled_parts,
    is_compiled,
    named_modules,
    named_parameters,
    original,
    run_eagerly,
)
from tests.helpers import MLP


def _eager(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
    return gm.forward


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()


def test_original_is_the_users_module_inside_the_compile_wrapper() -> None:
    model = MLP()
    assert original(model) is model
    assert original(torch.compile(model, backend=_eager)) is model
    assert original(None) is None


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("", ""),
        ("_orig_mod", ""),
        ("_orig_mod.net.0.weight", "net.0.weight"),
        ("enc._orig_mod.0", "enc.0"),
        ("orig_mod._orig_mod_x", "orig_mod._orig_mod_x"),  # only whole components go
    ],
)
def test_clean_name(name: str, clean: str) -> None:
    assert clean_name(name) == clean


def test_named_modules_and_parameters_skip_wrappers_and_their_prefix() -> None:
    model = MLP()
    model.net = torch.compile(model.net, backend=_eager)  # type: ignore[assignment]
    wrapped = torch.compile(model, backend=_eager)
    assert [(n, type(m).__name__) for n, m in named_modules(wrapped)] == [
        ("", "MLP"),
        ("net", "Sequential"),
        ("net.0", "Linear"),
        ("net.1", "ReLU"),
        ("net.2", "Linear"),
    ]
    assert [n for n, _ in named_parameters(wrapped)] == [n for n, _ in MLP().named_parameters()]


def test_compiled_parts_find_wrappers_and_in_place_compiles() -> None:
    model = MLP()
    assert compiled_parts(model) == []
    assert not is_compiled(model)
    first = model.net[0]
    first.compile(backend=_eager)
    inner = torch.compile(model.net, backend=_eager)
    model.net = inner  # type: ignore[assignment]
    assert compiled_parts(model) == [inner, first]
    assert is_compiled(model)
    assert compiled_parts("not a module") == []


def test_run_eagerly_holds_are_counted_and_restore_the_compiled_call() -> None:
    calls = {"graph": 0}

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        def call(*args: Any) -> Any:
            calls["graph"] += 1
            return gm.forward(*args)

        return call

    model = torch.compile(MLP(), backend=backend)
    x = torch.randn(2, 4)
    model(x)
    assert calls["graph"] == 1
    first, second = run_eagerly(model), run_eagerly(model)
    model(x)
    first()
    first()  # a release counts once
    model(x)
    assert calls["graph"] == 1  # eager while any hold is on
    second()
    model(x)
    assert calls["graph"] == 2  # the same graph again, not recompiled


def test_run_eagerly_in_place_compile_and_plain_modules() -> None:
    calls = {"graph": 0}

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        def call(*args: Any) -> Any:
            calls["graph"] += 1
            return gm.forward(*args)

        return call

    model = MLP()
    model.compile(backend=backend)
    release = run_eagerly(model)
    assert model._compiled_call_impl is None
    model(torch.randn(2, 4))
    release()
    model(torch.randn(2, 4))
    assert calls["graph"] == 1
    plain = MLP()
    run_eagerly(plain)()
    assert vars(plain).get("_compiled_call_impl") is None


def test_align_keys_matches_files_that_differ_only_by_orig_mod() -> None:
    plain = MLP()
    wrapped = torch.compile(MLP(), backend=_eager)
    theirs = wrapped.state_dict()
    aligned = align_keys(theirs, plain)
    assert list(aligned) == list(plain.state_dict())
    assert all(aligned[k] is theirs["_orig_mod." + k] for k in aligned)
    back = align_keys(plain.state_dict(), wrapped)
    assert list(back) == list(theirs)
    same = plain.state_dict()
    assert align_keys(same, plain) is same
    other = {"_orig_mod.net.0.weight": torch.zeros(1)}  # not the same set of names
    assert align_keys(other, plain) is other
    assert align_keys(None, plain) is None
