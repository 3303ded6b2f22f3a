"""The dashboard in a real JupyterLab and Notebook 7: a user trains, pauses, steps and edits.

Controls are found as a user (or a screen reader) finds them: buttons by role and name,
the learning-rate box by its label. Kernel-side values are read on the shell channel of the
notebook's kernel; plot growth is read from plotly's own data (``gd.data``) in the page.
Element screenshots of each stage go to ``artifacts/browser/``
(``docs/dashboard.png`` is taken by ``test_docs_image_browser.py``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright

pytestmark = pytest.mark.browser

SETUP = """\
import torch
from torch import nn
from sklearn.datasets import load_digits
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
digits = load_digits()
X = ((digits.data - digits.data.mean(0)) / (digits.data.std(0) + 1e-6)).astype("float32")

class MLP(nn.Module):
    def __init__(self, hidden=256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 10)
        )

    def forward(self, x):
        return self.net(x)

model = lw.setup(
    MLP, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam,
    metrics=[lw.metrics.Accuracy()],
).set_opt_hparams(lr=1e-3)
run = model.run(
    (X, digits.target), epochs={epochs}, valid_data=0.2, verbose=False,
    dataloader_options={{"batch_size": 8}},
)
"""

SHOW = "run.dashboard()"

LR = "run.ctx.optimizers['opt'].param_groups[0]['lr']"
POSITION = "[run.ctx.epoch, run.ctx.training, run.ctx.iter]"

# Points plotted per panel, read from plotly's data of each graph in the dashboard.
PLOTTED = """(root) => Object.fromEntries([...root.querySelectorAll('.lw-plot')].map((fig) => {
  const gd = fig.querySelector('.js-plotly-plot');
  return [fig.dataset.metric, gd && gd.data ? gd.data.map((t) => t.x.length) : []];
}))"""

# The last batch drawn in the loss stream (its point count can drop when old points are thinned).
STREAM_LAST = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="__stream"] .js-plotly-plot');
  const x = gd && gd.data && gd.data.length ? gd.data[0].x : [];
  return x.length ? x[x.length - 1] : 0;
}"""

# First and last batch of the drawn loss stream (how many points it draws follows the width).
STREAM_SPAN = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="__stream"] .js-plotly-plot');
  const x = gd && gd.data && gd.data.length ? gd.data[0].x : [];
  return x.length ? [x[0], x[x.length - 1]] : [];
}"""

# Long enough that a slow machine cannot finish before Pause is clicked (~0.13 s an epoch
# here; 80 was once not enough on a loaded machine); the test then lowers max_epochs.
EPOCHS = 400

VIEWPORT = {"width": 1440, "height": 1600}


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    """Auto-retrying assertions wait up to 30 s (Playwright's 5 s is short on a busy CI box)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


def _dashboard(nb: NotebookPage) -> Any:
    return nb.wait_for(nb.output(1).locator(".lw-dashboard"))


def _plotted(dash: Any) -> dict[str, list[int]]:
    return dict(dash.evaluate(PLOTTED))


def _train_points(counts: dict[str, list[int]], panel: str) -> int:
    """Points of the first (train, or raw loss) trace of ``panel``; 0 while it is not drawn."""
    traces = counts.get(panel) or [0]
    return traces[0]


def _epoch_fill(dash: Any) -> float:
    """How full the epoch bar is drawn, in percent: its fill's gradient stop (dashboard.css),
    on a fill as wide as the track."""
    return float(
        dash.locator(".lw-bar-epoch").evaluate(
            "(t) => { const fill = t.firstChild, w = (el) => el.getBoundingClientRect().width;"
            " if (w(fill) !== w(t)) return -1;"
            " const frac = getComputedStyle(fill).getPropertyValue('--lw-frac');"
            " return 100 * parseFloat(frac || '0'); }"
        )
    )


def _wait_plotted(nb: NotebookPage, dash: Any, pred: Any, timeout: float = 60) -> dict:
    """Poll the plotted point counts until ``pred(counts)`` holds."""
    deadline = time.monotonic() + timeout
    while not pred(counts := _plotted(dash)):
        assert time.monotonic() < deadline, f"plots did not get there: {counts}"
        nb.page.wait_for_timeout(100)  # polling interval of a condition
    return counts


def _next_batch(pos: list[Any], n_train: int, n_valid: int) -> list[Any]:
    """Where one more batch lands from ``[epoch, training, iter]`` (validation after training)."""
    epoch, training, it = pos
    if it < (n_train if training else n_valid):
        return [epoch, training, it + 1]
    return [epoch, False, 1] if training else [epoch + 1, True, 1]


def _click_and_settle(nb: NotebookPage, button: Any) -> None:
    """Click a stepping button; wait until the kernel ran the step and is paused again."""
    expect(button).to_be_enabled()
    before = nb.eval("run.n_events")
    button.click()
    nb.wait_value(f"[run.n_events > {before}, run.state]", [True, "paused"])


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_train_pause_step_edit_resume(open_notebook, ui: str) -> None:
    t_start = time.monotonic()
    nb = open_notebook([SETUP.format(epochs=EPOCHS), SHOW], ui=ui)
    nb.page.set_viewport_size(VIEWPORT)  # the whole dashboard in view for screenshots
    nb.run_all()
    dash = _dashboard(nb)
    badge = dash.get_by_role("status", name="Run state")
    expect(badge).to_have_text("ready")
    expect(dash.locator(".lw-plot-empty")).to_have_text("Plots appear when training starts.")
    n_train, n_valid = nb.eval("[len(run.ctx.train_data), len(run.ctx.valid_data)]")
    batch_row = dash.locator(".lw-bar-row").nth(1)
    expect(batch_row.locator(".lw-bar-label")).to_have_text("Train")  # what comes first
    expect(batch_row.locator(".lw-bar-text")).to_have_text(f"0 / {n_train}")
    assert _epoch_fill(dash) == 0
    nb.screenshot(dash, "dashboard-1-ready")

    # Start: the plots appear and grow (points counted in plotly's own data).
    t_click = t_start_click = time.monotonic()
    dash.get_by_role("button", name="Start", exact=True).click()
    expect(badge).to_have_text("running")
    t_badge = time.monotonic() - t_click
    nb.wait_value("run.state", "running")
    _wait_plotted(nb, dash, lambda c: _train_points(c, "__stream") > 0)
    t_stream = time.monotonic() - t_click
    first = _wait_plotted(
        nb, dash, lambda c: min(_train_points(c, "loss"), _train_points(c, "acc")) >= 2
    )
    first_batch = dash.evaluate(STREAM_LAST)
    # Growth relative to what was drawn first: a busy page may draw its first points late.
    # Each panel is read while it may be redrawn, so all growth is waited for, not asserted once.
    target = max(5, _train_points(first, "acc") + 1)
    _wait_plotted(
        nb,
        dash,
        lambda c: (
            min(_train_points(c, "loss"), _train_points(c, "acc")) >= target
            and dash.evaluate(STREAM_LAST) > first_batch
        ),
    )
    assert dash.evaluate(STREAM_LAST) > first_batch
    assert 0 < _epoch_fill(dash) < 100  # the epoch bar is partly filled
    nb.screenshot(dash, "dashboard-2-training")

    # Pause: the kernel reports it, the badge says it, stepping buttons come on.
    t_first_leg = time.monotonic() - t_start_click
    t_click = time.monotonic()
    dash.get_by_role("button", name="Pause", exact=True).click()
    expect(badge).to_have_text("paused")
    t_paused = time.monotonic() - t_click
    nb.wait_value("run.state", "paused")
    step_batch = dash.get_by_role("button", name="Step batch", exact=True)
    expect(step_batch).to_be_enabled()
    expect(dash.get_by_role("button", name="Resume", exact=True)).to_be_enabled()

    # Step batch: a pause lands inside a batch, so the first step completes that batch;
    # from a batch end, one step is exactly one batch further.
    _click_and_settle(nb, step_batch)
    where = nb.eval(POSITION)
    _click_and_settle(nb, step_batch)
    after = nb.eval(POSITION)
    assert after == _next_batch(where, n_train, n_valid), (where, after)
    assert nb.eval("run.event.value") in ("on_train_batch_end", "on_valid_batch_end")
    expect(batch_row.locator(".lw-bar-label")).to_have_text("Train" if after[1] else "Valid")
    expect(batch_row.locator(".lw-bar-text")).to_have_text(
        f"{after[2]} / {n_train if after[1] else n_valid}"
    )
    nb.screenshot(dash, "dashboard-3-stepped")

    # Edit lr: type, press Enter (edits.js commits on Enter or on change/blur).
    lr_box = dash.get_by_label("lr", exact=True)
    expect(lr_box).to_have_value("0.001")
    lr_box.fill("0.01")
    t_click = time.monotonic()
    lr_box.press("Enter")
    lr_msg = dash.locator(f"#{lr_box.get_attribute('aria-describedby')}")  # next to the box
    expect(lr_msg).to_have_text("lr of opt set to 0.01")
    t_edit = time.monotonic() - t_click
    assert nb.eval(LR) == 0.01
    expect(lr_box).to_have_value("0.01")

    # "abc" is refused next to the field, the box snaps back, the run keeps its lr.
    lr_box.fill("abc")
    lr_box.press("Enter")
    expect(lr_msg).to_have_text("lr: 'abc' is not a number; type e.g. 0.01 or 1e-3.")
    expect(lr_msg).to_be_visible()
    expect(lr_box).to_have_value("0.01")
    expect(lr_box).to_have_attribute("aria-invalid", "true")
    assert nb.eval(LR) == 0.01
    assert nb.eval("run.state") == "paused"
    nb.screenshot(dash, "dashboard-4-refused")

    # Lower max_epochs to a couple of epochs from here, then resume and train to the end.
    final = nb.eval("run.ctx.epoch") + 2
    max_box = dash.get_by_label("max_epochs", exact=True)
    max_box.fill(str(final))
    max_box.press("Enter")
    nb.wait_value("run.ctx.max_epochs", final)
    t_resume = time.monotonic()
    dash.get_by_role("button", name="Resume", exact=True).click()
    expect(badge).to_have_text("done", timeout=90_000)
    t_train = time.monotonic() - t_resume + t_first_leg
    nb.wait_value("run.state", "done")
    assert nb.eval(LR) == 0.01
    _wait_plotted(nb, dash, lambda c: c.get("acc") == c.get("loss") == [final, final])
    expect(dash.locator(".lw-bar-epoch")).to_have_attribute("aria-valuenow", str(final))
    for name in ("Start", "Pause", "Step batch", "Step epoch", "Stop"):
        label = "Resume" if name == "Start" else name
        expect(dash.get_by_role("button", name=label, exact=True)).to_be_disabled()
    nb.screenshot(dash, "dashboard-5-done")
    log = dash.locator(".lw-log-entry").all_text_contents()
    # Each edit went to the kernel once (Enter, then the change event, send one command).
    assert log.count("lr of opt set to 0.01") == 1, log
    assert log.count("lr: 'abc' is not a number; type e.g. 0.01 or 1e-3.") == 1, log
    assert nb.errors() == []
    print(
        f"\n{ui}: after a click, badge 'running' in {t_badge * 1e3:.0f} ms, first loss points "
        f"plotted in {t_stream * 1e3:.0f} ms; Pause shown in {t_paused * 1e3:.0f} ms; lr edit "
        f"answered next to the box in {t_edit * 1e3:.0f} ms; training took {t_train:.1f} s "
        f"of a {time.monotonic() - t_start:.1f} s scenario"
    )


def test_reload_renders_the_history_again(open_notebook) -> None:
    nb = open_notebook([SETUP.format(epochs=4), SHOW, "run.resume()\nrun.state"], ui="lab")
    nb.page.set_viewport_size(VIEWPORT)
    nb.run_all()
    dash = _dashboard(nb)
    expect(dash.get_by_role("status", name="Run state")).to_have_text("done")
    before = _wait_plotted(nb, dash, lambda c: c.get("acc") == [4, 4])
    span_before = dash.evaluate(STREAM_SPAN)
    log_before = dash.locator(".lw-log-entry").all_text_contents()
    nb.command("docmanager:save")  # the widget's output must be in the file to come back

    nb.page.reload()
    nb.wait_idle()
    dash = _dashboard(nb)
    expect(dash.get_by_role("status", name="Run state")).to_have_text("done")
    after = _wait_plotted(nb, dash, lambda c: c.get("acc") == [4, 4])
    assert after.pop("__stream")  # drawn (its point count follows the panel's width)
    assert before.pop("__stream")
    assert after == before  # every epoch of every metric
    assert dash.evaluate(STREAM_SPAN) == span_before  # the loss stream from its first batch
    assert dash.locator(".lw-log-entry").all_text_contents() == log_before
    expect(dash.get_by_label("lr", exact=True)).to_have_value("0.001")
    nb.screenshot(dash, "dashboard-after-reload")
    assert nb.errors() == []


def test_with_gradient_accumulation_the_batch_bar_counts_optimizer_steps(open_notebook) -> None:
    setup = SETUP.format(epochs=1).replace("verbose=False,", "verbose=False, accumulate=4,")
    nb = open_notebook([setup, SHOW, 'run.step("batch", n=5)\nrun.ctx.iter'], ui="lab")
    nb.run_all()
    dash = _dashboard(nb)
    n_train = nb.eval("len(run.ctx.train_data)")
    steps = -(-n_train // 4)
    batch_row = dash.locator(".lw-bar-row").nth(1)
    expect(batch_row.locator(".lw-bar-text")).to_have_text(f"5 / {n_train} · 1 / {steps} steps")
    assert nb.errors() == []
