"""session.py: every Context and Run is built here, and a blocking fit ends here."""

from __future__ import annotations

import ast
import contextlib
import os
import pathlib
import signal
from collections.abc import Iterator

import pytest
import torch

import luzwidget as lw
from luzwidget import Callback, CallbackError
from luzwidget.core.build import make_context
from luzwidget.core.engine import engine_of
from tests.helpers import E, SilentStep, make_data, make_spec

PACKAGE = pathlib.Path(lw.__file__).parent
X, Y = make_data(64)
OPTS = {"batch_size": 16}


@contextlib.contextmanager
def _catch_stray_sigint() -> Iterator[list[int]]:
    stray: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stray.append(signum))
    try:
        yield stray
    finally:
        signal.signal(signal.SIGINT, previous)


class CtrlC(Callback):
    """Presses Ctrl-C once, in the third batch of epoch 1."""

    sent = False

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if ctx.epoch == 1 and ctx.iter == 3 and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_after_ctrl_c_on_interrupt_and_on_fit_end_are_events_of_the_run() -> None:
    with _catch_stray_sigint() as stray:
        fitted = make_spec().fit(
            (X, Y), epochs=2, callbacks=[CtrlC()], verbose=False, dataloader_options=OPTS
        )
    assert stray == []
    run = fitted.run
    assert list(run.events)[-3:] == [E.on_train_batch_end, E.on_interrupt, E.on_fit_end]
    assert run.event is E.on_fit_end
    # the fit stays where Ctrl-C left it, paused and resumable
    assert (run.state, run.interrupted) == ("paused", True)
    assert run.reason.startswith("interrupted (Ctrl-C) after on_train_batch_end (epoch 1, batch 3)")
    assert (run.ctx.epoch, run.ctx.iter) == (1, 3)
    run.resume()
    assert run.state == "done"
    assert run.ctx.epoch == 2


def test_a_failing_on_interrupt_callback_stops_the_run_on_its_error() -> None:
    class Broken(Callback):
        def on_interrupt(self, ctx: lw.Context) -> None:
            raise RuntimeError("cannot save")

    with _catch_stray_sigint(), pytest.raises(CallbackError, match="cannot save") as info:
        make_spec().fit(
            (X, Y), epochs=2, callbacks=[CtrlC(), Broken()], verbose=False, dataloader_options=OPTS
        )
    run = info.value.run  # type: ignore[attr-defined]
    assert isinstance(run, lw.Run)
    assert run.state == "error"
    assert "on_interrupt" in str(run.error)


def test_a_loaded_model_has_a_done_run_that_never_ran(tmp_path: pathlib.Path) -> None:
    fitted = make_spec().fit((X, Y), epochs=1, verbose=False)
    again = lw.load(lw.save(fitted, tmp_path / "m.pt"), setup=make_spec())
    assert again.run.state == "done"
    assert again.run.result is again
    assert (again.run.n_events, again.run.event) == (0, None)
    assert again.ctx.epoch == again.ctx.max_epochs == 1


def test_run_finished_is_done_with_its_result_at_once() -> None:
    ran = []
    run = lw.Run.finished(lw.Context(), finish=lambda r: ran.append(r) or "result")
    assert (run.state, run.result, ran) == ("done", "result", [run])


def test_make_context_gives_every_context_an_engine_and_binds_the_module_step() -> None:
    model = SilentStep()
    ctx = make_context(model, lw.Accelerator(), [], hparams={"a": 1})
    assert engine_of(ctx).ctx is ctx
    assert ctx.device == torch.device("cpu")
    assert ctx.step.func == model.step
    assert ctx.step.args == (ctx,)


# -- the import graph -------------------------------------------------------------------------

USER_FACING = ("module", "fitted", "lr_finder", "saving")


def _runtime_imports(name: str) -> set[str]:
    """The luzwidget modules ``name`` imports, at the top or inside functions, outside
    ``if TYPE_CHECKING:``."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in typing_only and node.module:
            found.add(node.module.removeprefix("luzwidget."))
    return found


def test_no_module_builds_runs_but_session() -> None:
    assert not (PACKAGE / "building.py").exists()
    for name in USER_FACING:
        assert "building" not in _runtime_imports(name), name


def test_fitted_and_lr_finder_import_no_other_user_facing_module() -> None:
    # module.py is the facade of setup(): it returns a Fitted and offers lr_finder, so it
    # imports those two; nothing imports module back, and nothing else forms a circle.
    for name in ("fitted", "lr_finder"):
        assert not _runtime_imports(name) & set(USER_FACING), name
    assert _runtime_imports("module") & set(USER_FACING) == {"fitted", "lr_finder"}
    assert "module" not in _runtime_imports("session")


def test_saving_is_the_top_layer_and_imports_what_it_builds_at_the_top() -> None:
    # load() builds a Setup and returns a Fitted, so saving sits above module and fitted,
    # and says so where the imports are read: none is hidden inside a function.
    tree = ast.parse((PACKAGE / "saving.py").read_text())
    at_top = {
        node.module.removeprefix("luzwidget.")
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert {"fitted", "module", "session"} <= at_top
    assert _runtime_imports("saving") & set(USER_FACING) == {"fitted", "module"}
    for name in ("session", "module", "fitted", "lr_finder"):
        assert "saving" not in _runtime_imports(name), name


def _module_level_graph() -> dict[str, set[str]]:
    """Every luzwidget module and the luzwidget modules it imports when it is imported
    (at its top, outside ``if TYPE_CHECKING:``; imports inside functions run later)."""
    names = {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        or "__init__": p
        for p in PACKAGE.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        graph[name] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("luzwidget"):
                base = (node.module or "").removeprefix("luzwidget").removeprefix(".")
                subs = {f"{base}.{a.name}".strip(".") for a in node.names}
                graph[name] |= ({base} | subs) & set(names)
    return graph


def test_the_package_imports_no_module_in_a_circle() -> None:
    graph = _module_level_graph()
    assert {"session", "module", "saving", "control.driver", "control.boundary"} <= set(graph)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join((*path, name))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
