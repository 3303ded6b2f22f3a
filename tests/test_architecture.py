"""The package's layers: the contract in pyproject.toml holds, and no import goes in a circle.

Every import is counted, those inside functions too (grimp reads them all); imports under
``if TYPE_CHECKING:`` are types only and left out. The one door up, ``run.dashboard()``
into ``widgets``, is the contract's only ignored import.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
DOOR = ("luzwidget.control.run", "luzwidget.widgets")


def _contract() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract  # type: ignore[no-any-return]


def test_the_layer_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout.replace("Contracts: ", "")


def test_the_only_ignored_import_is_the_door() -> None:
    assert _contract()["ignore_imports"] == [" -> ".join(DOOR)]


def test_every_top_level_module_and_folder_is_in_a_layer() -> None:
    layers = _contract()["layers"]
    named = {n.strip() for layer in layers for n in layer.replace("|", ":").split(":")}  # type: ignore[attr-defined]
    package = ROOT / "luzwidget"
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert present == named


def test_no_module_imports_another_in_a_circle_but_through_the_door() -> None:
    graph = grimp.build_graph("luzwidget", exclude_type_checking_imports=True, cache_dir=None)
    edges = {
        (m, d)
        for m in graph.modules
        for d in graph.find_modules_directly_imported_by(m)
        if not (m == DOOR[0] and d.startswith(DOOR[1]))
    }
    succ: dict[str, set[str]] = {}
    for m, d in edges:
        succ.setdefault(m, set()).add(d)
    # Tarjan's strongly connected components: any component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph.modules):
        if v not in index:
            visit(v)
    assert circles == []
