"""How heavy the dashboard is on the page while a fast run trains, in a real browser.

Opens a notebook with a tiny model (~1,000+ batches/s) and its dashboard in JupyterLab,
Notebook 7 or marimo (headless Debian Chromium via Playwright, the browser-test harness in
``tests/browser/``), clicks Start and measures, while the run trains:

* **busy**: the page's main thread busy fraction, from CDP ``Performance.getMetrics``
  (``TaskDuration`` and ``ScriptDuration`` differences over the free-running window);
* **long tasks**: ``PerformanceObserver`` ``longtask`` entries in that window (count, total,
  max; a long task is one over 50 ms);
* **msgs/s, kB/s**: websocket frames the page received in that window, and their bytes;
* **click**: Pause clicked (a real mouse click through CDP), time from the click event's
  timestamp to the badge showing ``paused`` and to the next frame after it (median, p95 over
  ``--clicks`` clicks, resuming between them), and where that time goes (medians): in the page
  until the command leaves on the websocket, server and kernel until the answer comes back,
  in the page again until the badge shows it (marimo's own socket is not followed);
* **batches/s**: what the run trained while measured (read from the kernel; not in marimo);
* **stretch**: how much slower than their own pace the dashboard's clocks drew at the end of
  the window (``js/src/pace.js``: 1 when the page's drawing is within its budget; 2: the
  calm redraws came every 400 ms instead of 200, the plots' rounds every 600 instead of 300).

    python benchmarks/browser.py                 # JupyterLab, full
    python benchmarks/browser.py --quick         # shorter windows, fewer clicks
    python benchmarks/browser.py --app notebook  # Notebook 7 (or: marimo; or: all)
    python benchmarks/browser.py --profile 4     # also a 4 s CPU profile: top self times
    python benchmarks/browser.py --trace 4       # also a 4 s trace: main-thread time by kind
    python benchmarks/browser.py --panels layers,batch,history   # those panels open
    python benchmarks/browser.py --model playground  # the spiral MLP: the Playground panel draws
    python benchmarks/browser.py --model images      # 8x8 images: Batch draws images and matrices

Every panel is open while measured (``--panels none``: none): each closed panel the page
shows is opened by a click on its title, and every on-demand part the kernel has
(``dashboard.panel(name)``: Layers, Batch and any added later).

Targets (issues 12, 24): busy <= 10 %, no long task over 50 ms, click -> badge <= 100 ms
median and <= 150 ms p95, about 10 messages a second in all, with every panel open. The
numbers depend on the machine: run before/after in the same conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from browser_probes import PAGE_PROBE, Frames, _metrics, _pct, _profile, _trace  # noqa: E402
from browser_setups import SETUPS  # noqa: E402
from harness import NotebookPage, launch_browser  # noqa: E402
from lab_server import JupyterServer  # noqa: E402

SHOW = "run.dashboard()"
DONE_BATCHES = "run.ctx.iter + (run.ctx.epoch - 1) * len(run.ctx.train_data)"


@dataclass
class Result:
    app: str
    busy: float = 0.0
    script: float = 0.0
    layout: float = 0.0
    long_n: int = 0
    long_total: float = 0.0
    long_max: float = 0.0
    msgs: float = 0.0
    kbytes: float = 0.0
    batches: float = 0.0
    rate: float = 0.0  # batches/s trained while measured
    stretch: float = float("nan")  # js/src/pace.js at the end of the window
    click_badge: list[float] = field(default_factory=list)
    click_frame: list[float] = field(default_factory=list)
    click_kernel: list[float] = field(default_factory=list)  # ws sent -> ws received
    click_out: list[float] = field(default_factory=list)  # click -> ws sent (page)
    click_in: list[float] = field(default_factory=list)  # ws received -> badge (page)
    panels: list[str] = field(default_factory=list)  # the on-demand panels open
    in_view: list[str] = field(default_factory=list)  # the plots and panels seen
    profile: list[tuple[float, str]] = field(default_factory=list)
    trace: list[tuple[float, str]] = field(default_factory=list)


def measure(page: Any, dash: Any, kernel_eval: Any, args: argparse.Namespace, app: str) -> Result:
    """Start the run, measure the free-running window, then click Pause/Resume."""
    res = Result(app)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
    badge = dash.locator(".lw-state")
    badge.evaluate("(b) => window.__bench.watch(b)")
    frames: Frames = args.frames
    errors: list[str] = []  # a page error makes every figure below meaningless
    page.on("pageerror", lambda e: errors.append(str(e)))
    if args.panels == "all":
        res.panels = open_panels(dash, kernel_eval)
    elif args.panels != "none":  # some: "layers,batch"
        for name in args.panels.split(","):
            dash.locator(f"details.lw-{name}:not([open]) > summary").click()
        res.panels = args.panels.split(",")
    if res.panels:  # all in view: a plot or panel scrolled away is not drawn
        page.set_viewport_size({"width": 1440, "height": args.height})
        dash.locator(".lw-inside").scroll_into_view_if_needed()
    dash.locator(".lw-btn-start").click()
    _wait_state(dash, "running")
    time.sleep(args.warmup)  # first render of the plots is not what is measured
    b0, w0 = float(kernel_eval(DONE_BATCHES)), time.monotonic()
    m0, t0 = _metrics(cdp), page.evaluate("performance.now()")
    page.wait_for_timeout(args.window * 1000)  # (Playwright dispatches events meanwhile)
    m1, t1 = _metrics(cdp), page.evaluate("performance.now()")
    res.stretch = page.evaluate(STRETCH)
    res.in_view = dash.evaluate(IN_VIEW)
    res.rate = (float(kernel_eval(DONE_BATCHES)) - b0) / (time.monotonic() - w0)
    span = m1["Timestamp"] - m0["Timestamp"]
    res.busy = (m1["TaskDuration"] - m0["TaskDuration"]) / span
    res.script = (m1["ScriptDuration"] - m0["ScriptDuration"]) / span
    res.layout = (
        m1["LayoutDuration"]
        - m0["LayoutDuration"]
        + m1["RecalcStyleDuration"]
        - m0["RecalcStyleDuration"]
    ) / span
    longs = [d for s, d in page.evaluate("window.__bench.long") if t0 <= s <= t1]
    res.long_n, res.long_total = len(longs), sum(longs)
    res.long_max = max(longs, default=0.0)
    n_frames, n_bytes = frames.between(m0["Timestamp"], m1["Timestamp"])
    res.msgs, res.kbytes = n_frames / span, n_bytes / span / 1e3
    if args.profile:  # after the window: the profiler's own cost is not measured
        res.profile = _profile(cdp, args.profile)
    if args.trace:
        res.trace = _trace(args.browser, page, args.trace)
    for _ in range(args.clicks):
        frames.sent.clear()
        frames.received.clear()
        frames.keep = True
        _click_until(page, dash, ".lw-btn-pause", "paused", res)
        frames.keep = False
        res.click_kernel.append(frames.round_trip(b'"pause"', b'"paused"'))
        time.sleep(0.3)
        dash.locator(".lw-btn-start").click()
        _wait_state(dash, "running")
        time.sleep(args.gap)
    dash.locator(".lw-btn-stop").click()
    _wait_state(dash, "done")
    if errors:
        raise SystemExit(f"the page raised {len(errors)} errors, first: {errors[0]}")
    res.batches = float(kernel_eval(DONE_BATCHES))
    return res


PANELS = "run.dashboard()._collector.panels"
STRETCH = "globalThis[Symbol.for('luzwidget.pace')]?.stretch() ?? NaN"

# The plots and open panels at least partly in the viewport.
IN_VIEW = """(root) => [...root.querySelectorAll('figure.lw-plot, details.lw-panel[open]')]
  .filter((el) => { const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < innerHeight && r.height > 0; })
  .map((el) => el.dataset.metric || el.className.split(' ')[0])"""


def open_panels(dash: Any, kernel_eval: Any) -> list[str]:
    """Open every panel: each closed one the page shows, by clicking its title as a person
    does (Layers, Batch and any other on-demand panel, whatever parts the dashboard has),
    then, kernel side, every on-demand part still closed (``dashboard.panel(name)``).
    Returns the on-demand parts' names."""
    closed = dash.locator("details.lw-panel:not([open]) > summary")
    for _ in range(50):
        if not closed.count():
            break
        closed.first.click()
    still = kernel_eval(f"[n for n, p in {PANELS}.items() if not p.open]")
    if not isinstance(still, list):  # marimo: the kernel is not reachable from here
        return ["those the page shows"]
    for name in still:
        kernel_eval(f"run.dashboard().panel({name!r})")
    names: list[str] = kernel_eval(f"sorted(n for n, p in {PANELS}.items() if p.open)")
    return names


def _wait_state(dash: Any, state: str) -> None:
    """Wait for the badge (a locator: marimo renders widgets in a shadow root)."""
    dash.locator(f".lw-state[data-state='{state}']").wait_for(timeout=60_000)


def _click_until(page: Any, dash: Any, selector: str, state: str, res: Result) -> None:
    n_marks = page.evaluate("window.__bench.marks.length")
    n_clicks = page.evaluate("window.__bench.clicks.length")
    n_sent, n_received = page.evaluate(
        "[window.__bench.sent.length, window.__bench.received.length]"
    )
    dash.locator(selector).click()
    page.wait_for_function(
        "([n, s]) => window.__bench.marks.slice(n).some((m) => m[0] === s)", arg=[n_marks, state]
    )
    clicked = page.evaluate("(n) => window.__bench.clicks[n]", n_clicks)
    marks = page.evaluate("(n) => window.__bench.marks.slice(n)", n_marks)
    _, t_mut, t_frame = next(m for m in marks if m[0] == state)
    res.click_badge.append(t_mut - clicked)
    res.click_frame.append(t_frame - clicked)
    sent, received = page.evaluate(
        "([s, r]) => [window.__bench.sent.slice(s), window.__bench.received.slice(r)]",
        [n_sent, n_received],
    )
    if sent and received:  # (marimo's own socket: none)
        res.click_out.append(sent[0] - clicked)
        res.click_in.append(t_mut - max(t for t in received if t <= t_mut))


@contextlib.contextmanager
def jupyter_app(
    app: str, browser: Any, base: Path, setup: str
) -> Iterator[tuple[Any, Any, Any, Frames]]:
    """(page, dashboard locator, kernel eval) of a fresh notebook in Lab or Notebook 7."""
    with JupyterServer(base) as server:
        path = server.write_notebook(f"bench-{app}.ipynb", [setup, SHOW])
        nb = NotebookPage(server, browser, path, ui=app)  # type: ignore[arg-type]
        nb.context.add_init_script(PAGE_PROBE)
        frames = Frames(nb.page)
        try:
            nb.open()
            nb.page.set_viewport_size({"width": 1440, "height": 1400})
            nb.run_all()
            dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
            dash.locator(".lw-state[data-state='ready']").wait_for()
            yield nb.page, dash, nb.eval, frames
        finally:
            nb.close()


@contextlib.contextmanager
def marimo_app(browser: Any, base: Path) -> Iterator[tuple[Any, Any, Any, Frames]]:
    """(page, dashboard locator, kernel eval) of examples/marimo_dashboard.py in marimo."""
    from marimo_server import MarimoServer  # tests/browser

    app_path = base / "bench_app.py"
    app_path.write_text(MARIMO_APP)
    with MarimoServer(app_path, base) as server:
        context = browser.new_context(viewport={"width": 1440, "height": 1400})
        context.add_init_script(PAGE_PROBE)
        page = context.new_page()
        frames = Frames(page)
        try:
            page.goto(server.url)
            dash = page.locator(".lw-dashboard").first
            dash.wait_for(state="visible", timeout=120_000)
            dash.locator(".lw-state[data-state='ready']").wait_for(timeout=60_000)
            yield page, dash, server.eval, frames
        finally:
            context.close()


MARIMO_APP = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
{setup}
    dash = mo.ui.anywidget(run.dashboard())
    return dash, mo, run


@app.cell
def _(dash):
    dash
    return


if __name__ == "__main__":
    app.run()
""".replace(
    "{setup}", "\n".join("    " + line if line else "" for line in SETUPS["linear"].splitlines())
)


def run_app(app: str, args: argparse.Namespace) -> Result:
    with launch_browser() as browser, tempfile.TemporaryDirectory() as tmp:
        opener = (
            marimo_app(browser, Path(tmp))
            if app == "marimo"
            else jupyter_app(app, browser, Path(tmp), SETUPS[args.model])
        )
        with opener as (page, dash, kernel_eval, frames):
            args.frames, args.browser = frames, browser
            return measure(page, dash, kernel_eval, args, app)


def _row(r: Result) -> str:
    med, p95 = statistics.median(r.click_badge or [float("nan")]), _pct(r.click_badge, 0.95)
    fmed, fp95 = statistics.median(r.click_frame or [float("nan")]), _pct(r.click_frame, 0.95)
    kmed = statistics.median(r.click_kernel or [float("nan")])
    omed = statistics.median(r.click_out or [float("nan")])
    imed = statistics.median(r.click_in or [float("nan")])
    return (
        f"| {r.app:8} | {r.busy * 100:5.1f} % | {r.script * 100:5.1f} % | {r.layout * 100:5.1f} % "
        f"| {r.long_n:3d} / {r.long_total:6.0f} / {r.long_max:4.0f} "
        f"| {r.msgs:5.1f} | {r.kbytes:6.1f} "
        f"| {med:4.0f} / {p95:4.0f} | {fmed:4.0f} / {fp95:4.0f} "
        f"| {omed:3.0f} / {kmed:3.0f} / {imed:3.0f} "
        f"| {r.rate:6.0f} | {r.stretch:4.1f} |"
    )


HEADER = (
    "| app      | busy    | script  | layout  | long tasks n / ms / max | msg/s | kB/s   "
    "| click->badge med/p95 ms | ->frame med/p95 | page / ws round trip / page med "
    "| batches/s | stretch |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="lab", choices=["lab", "notebook", "marimo", "all"])
    parser.add_argument("--quick", action="store_true", help="4 s window, 4 clicks")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--profile", type=float, default=0.0, help="seconds of CPU profile")
    parser.add_argument("--trace", type=float, default=0.0, help="seconds of timeline trace")
    parser.add_argument("--model", default="linear", choices=sorted(SETUPS))
    parser.add_argument(
        "--height", type=int, default=2600, help="viewport height with panels open (px)"
    )
    parser.add_argument(
        "--panels",
        default="all",
        help="open every panel before Start (all, the default), none, or those named: layers,batch",
    )
    args = parser.parse_args()
    args.warmup, args.gap = 2.0, 0.7
    if args.quick:
        args.window, args.clicks, args.warmup = 4.0, 4, 1.5
    apps = ["lab", "notebook", "marimo"] if args.app == "all" else [args.app]
    load = os.getloadavg()
    results = [run_app(app, args) for app in apps]
    print(
        f"\nload average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} CPUs); window {args.window:.0f} s, {args.clicks} clicks"
    )
    print(HEADER)
    for r in results:
        print(_row(r))
    for r in results:
        print(f"{r.app}: panels open: {', '.join(r.panels) or 'none'}; in view: {r.in_view}")
    for r in results:
        if r.profile:
            print(f"\nCPU profile ({r.app}), self time ms:")
            for ms, name in r.profile:
                print(f"  {ms:8.1f}  {name}")
        if r.trace:
            print(f"\nMain thread ({r.app}), self time ms by trace event:")
            for ms, name in r.trace:
                print(f"  {ms:8.1f}  {name}")


if __name__ == "__main__":
    main()
