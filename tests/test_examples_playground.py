"""examples/playground.ipynb runs top to bottom in a real kernel and shows what its text
promises: the Playground panel open on the spiral, stepping one mini-batch, an lr that is too
high, a rewind to before it, a branch that does better, and a narrower tanh net for contrast."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "playground.ipynb"


def text_of(cell: Any) -> str:
    return "".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "")
        for o in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable)")
    nb.cells.append(probe)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}},
    )
    # A tiny model trains fastest on one thread (on a shared CI machine, torch's thread pool
    # spends more time waiting than computing: 10x slower).
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        client.execute()  # raises CellExecutionError with the failing cell on any error
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return nb


def test_runs_in_this_environment(executed: Any) -> None:
    assert Path(text_of(executed.cells[-1]).strip()).resolve() == Path(sys.executable).resolve()


def test_at_most_ten_statements_of_user_code_to_the_playground() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    # statements, not lines: ruff's formatter may wrap a long call over three lines
    assert len(ast.parse(first.source).body) <= 10
    assert 'lw.datasets.playground("spiral"' in first.source


def test_shows_what_it_explains(executed: Any) -> None:
    out = "\n".join(text_of(c) for c in executed.cells if c.cell_type == "code")
    assert "Dashboard object" in out or "Dashboard(" in out
    assert "<Run paused: epoch 1/60, batch 1, after on_train_batch_end>" in out
    assert "after 20 epochs: valid acc 0.93" in out
    assert "10 epochs at lr 0.2: valid acc 0.57" in out
    assert "rewound: <Run paused: epoch 20/60, batch 0, after on_epoch_end>, lr 0.01" in out
    assert "branch (lr 0.003, weight decay 1e-4, batches of 32): valid acc 0.93" in out
    assert "branch 1 lr 0.003, weight_decay 0.0001 from epoch 20     30       0.93" in out
    assert "8 tanh units per layer, 30 epochs: valid acc 0.51" in out
