"""states.py: RunState is how the code names a run's state; strings stay for users."""

from __future__ import annotations

import ast
from pathlib import Path

import luzwidget as lw
from luzwidget.core.states import RunState

PACKAGE = Path(lw.__file__).parent
STATES = {s.value for s in RunState}


def _is_state(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "state") or (
        isinstance(node, ast.Attribute) and node.attr == "state"
    )


def _literals(node: ast.expr) -> list[str]:
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [n.value for n in items if isinstance(n, ast.Constant) and n.value in STATES]


def test_a_state_equals_its_string_for_users() -> None:
    assert RunState.PAUSED == "paused"
    assert repr(RunState.DONE) == "'done'"


def test_no_module_compares_a_state_with_a_string() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                _is_state(side) for side in [node.left, *node.comparators]
            ):
                for side in [node.left, *node.comparators]:
                    found += [
                        f"{path.relative_to(PACKAGE)}:{node.lineno} {s!r}" for s in _literals(side)
                    ]
    assert found == []
