"""Page-side probes of ``benchmarks/browser.py``: the script installed before the app's own,
websocket frames, CDP metrics, a CPU profile and a main-thread trace summarised."""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Installed before the app's scripts: long tasks, and badge changes with their times.
PAGE_PROBE = r"""
(() => {
  const P = { long: [], marks: [] };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) P.long.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) { P.noLongtask = String(e); }
  P.watch = (badge) => {
    new MutationObserver(() => {
      const t = performance.now();
      const state = badge.dataset.state;
      requestAnimationFrame(() => P.marks.push([state, t, performance.now()]));
    }).observe(badge, { attributes: true, attributeFilter: ["data-state"] });
  };
  P.clicks = [];
  document.addEventListener("click", (e) => P.clicks.push(e.timeStamp), true);
  // Websocket frames with the pause command and its answer, on the page's clock: the click's
  // way splits into page (click -> sent), server and kernel (sent -> received), page again.
  P.sent = []; P.received = [];
  const dec = new TextDecoder();
  const bytes = (d) => d instanceof ArrayBuffer || ArrayBuffer.isView(d);
  const text = (d) => (typeof d === "string" ? d : bytes(d) ? dec.decode(d) : "");
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (d) {
    if (text(d).includes('"pause"')) P.sent.push(performance.now());
    return send.call(this, d);
  };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (text(e.data).includes('"paused"')) P.received.push(performance.now());
      });
    }
  };
  window.__bench = P;
})();
"""


def _metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Frames:
    """Websocket frames received by the page: (CDP timestamp, bytes) of each."""

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[float, int]] = []
        self.sent: list[tuple[float, bytes]] = []  # (timestamp, payload) of sent frames
        self.received: list[tuple[float, bytes]] = []  # kept only while ``keep``
        self.keep = False
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.webSocketFrameReceived", self._frame)
        self.cdp.on("Network.webSocketFrameSent", self._sent)
        self.cdp.send("Network.enable")

    @staticmethod
    def _payload(event: Any) -> bytes:
        response = event["response"]
        data = response.get("payloadData", "")
        return base64.b64decode(data) if response.get("opcode") == 2 else data.encode()

    def _frame(self, event: Any) -> None:
        self.frames.append((event["timestamp"], len(event["response"].get("payloadData", ""))))
        if self.keep:
            self.received.append((event["timestamp"], self._payload(event)))

    def _sent(self, event: Any) -> None:
        if self.keep:
            self.sent.append((event["timestamp"], self._payload(event)))

    def round_trip(self, cmd: bytes, answer: bytes) -> float:
        """ms from the last frame sent with ``cmd`` to the next one received with ``answer``."""
        t0 = max((t for t, p in self.sent if cmd in p), default=None)
        if t0 is None:
            return float("nan")
        t1 = min((t for t, p in self.received if t >= t0 and answer in p), default=float("nan"))
        return (t1 - t0) * 1e3

    def between(self, t0: float, t1: float) -> tuple[int, int]:
        """Frames and bytes received between CDP timestamps ``t0`` and ``t1``."""
        sizes = [n for t, n in self.frames if t0 <= t <= t1]
        return len(sizes), sum(sizes)


def _profile(cdp: Any, seconds: float) -> list[tuple[float, str]]:
    """Top self times (ms) of a CPU profile of ``seconds``."""
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    time.sleep(seconds)
    prof = cdp.send("Profiler.stop")["profile"]
    if out := os.environ.get("LW_BENCH_PROFILE_OUT"):  # the raw profile, for DevTools
        Path(out).write_text(__import__("json").dumps(prof))
    nodes = {n["id"]: n for n in prof["nodes"]}
    deltas = prof.get("timeDeltas", [])
    self_ms: Counter[str] = Counter()
    for sample, dt in zip(prof.get("samples", []), deltas, strict=False):
        frame = nodes[sample]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1][:30]
        self_ms[f"{frame['functionName'] or '(anon)'} {url}:{frame['lineNumber']}"] += dt / 1e3
    return [(ms, name) for name, ms in self_ms.most_common(25)]


def _trace(browser: Any, page: Any, seconds: float) -> list[tuple[float, str]]:
    """Main-thread self time (ms) by trace event name over ``seconds`` (paint, style...), each
    name followed by how many times it ran (``xN``: a frame's steps run once a frame)."""
    import json

    categories = os.environ.get("LW_BENCH_TRACE_CATS", "devtools.timeline,v8,blink,toplevel")
    browser.start_tracing(page=page, categories=categories.split(","))
    time.sleep(seconds)
    raw = browser.stop_tracing()
    if out := os.environ.get("LW_BENCH_TRACE_OUT"):  # the raw trace, for DevTools
        Path(out).write_bytes(raw)
    events = json.loads(raw)["traceEvents"]
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }
    main = [
        e
        for e in events
        if e.get("ph") == "X" and "dur" in e and names.get((e["pid"], e["tid"])) == "CrRendererMain"
    ]
    main.sort(key=lambda e: (e["pid"], e["tid"], e["ts"], -e["dur"]))
    self_us: Counter[str] = Counter()
    count: Counter[str] = Counter()
    stack: list[tuple[Any, float, str]] = []  # (thread, end, name)
    for e in main:
        thread, start, end = (e["pid"], e["tid"]), e["ts"], e["ts"] + e["dur"]
        while stack and (stack[-1][0] != thread or stack[-1][1] <= start):
            stack.pop()
        if stack:  # a child's time is not its parent's own
            self_us[stack[-1][2]] -= e["dur"]
        self_us[e["name"]] += e["dur"]
        count[e["name"]] += 1
        stack.append((thread, end, e["name"]))
    return [(us / 1e3, f"{name} x{count[name]}") for name, us in self_us.most_common(20)]
