// Live plots with plotly.js: one panel per metric (train and valid per epoch) and the
// per-batch loss stream (raw + EMA). Points come from the store; a panel is redrawn, when
// its figure changed, with one Plotly.react holding everything (its traces, the time-travel
// overlay's, every shape): one plotly redraw per panel, never two.
//
// Cheap at any batch rate: plots are redrawn on their own clock (the `Redraws` scheduler
// below), not at the 10 Hz of the kernel's messages: at most every PERIOD_MIN ms, slower
// when a redraw costs more (a redraw costs at most ~1/COST_FACTOR of the time), the panels
// of a round in one task while it stays short (SLICE_MS: no long task) so that a round is
// one frame (each frame in which plotly changes its SVG costs the whole page a compositing
// update, ~6 ms in JupyterLab), and not at all while the tab is hidden or the plots
// are scrolled away. Plotly never measures the page: widths come from a ResizeObserver
// (autosize off), margins are fixed (no automargin, tick labels never measured), legends are
// HTML in the caption, and hover is off while the run trains. A curve of many epochs drops
// its markers (each is an SVG node plotly updates at every redraw).
import { h, uid } from "../dom.js";
import { getPlotly } from "../plotly_slot.js";
import { pageClock } from "../pace.js";
import { markerShapes, overlayTraces, snapshotMarkers } from "./overlay.js"; // time travel
import { bucketEnds, minMax } from "./thin.js";
import { lineAlpha, plainColor, withAlpha } from "./colors.js";

export { contrast, lineAlpha } from "./colors.js";

function readTheme(el) {
  const cs = getComputedStyle(el);
  const v = (name, fallback) => plainColor(cs.getPropertyValue(name).trim(), fallback);
  const fg = v("--lw-fg", "#1f2328");
  return {
    fg,
    muted: v("--lw-fg2", "#57606a"),
    grid: withAlpha(fg, 0.12),
    bg: v("--lw-bg", "#ffffff"),
    train: v("--lw-train", "#1976d2"),
    valid: v("--lw-valid", "#e65100"),
    accent: v("--lw-accent", "#1976d2"),
    font: cs.getPropertyValue("--lw-font").trim() || "system-ui, sans-serif",
  };
}

const HEIGHT = 190;
const PERIOD_MIN = 300; // ms between two redraw rounds, at least (~3 Hz)
const PERIOD_MAX = 3000;
const COST_FACTOR = 25; // a round may cost at most 1/COST_FACTOR of the time (4 %)
const SLICE_MS = 30; // a round draws the next panel in the same task if it would end under this
const MARKERS_MAX = 60; // a curve with more points is drawn without markers (one SVG node each)

/** Hover only while nothing streams in (hover machinery on a plot that redraws is wasted). */
function hoverFor(status) {
  return status && status.state === "running" ? false : "x unified";
}

function baseLayout(t, xTitle, logY, width, hover) {
  // ticklabeloverflow "allow": plotly would measure every tick label (getBoundingClientRect)
  // at each redraw to hide those past the plot; with fixed margins none is.
  const axis = { gridcolor: t.grid, linecolor: t.grid, zerolinecolor: t.grid, automargin: false, tickfont: { size: 10 }, ticklabeloverflow: "allow" };
  return {
    width,
    height: HEIGHT,
    autosize: false,
    margin: { l: 52, r: 10, t: 8, b: 38 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: t.font, size: 11, color: t.fg },
    showlegend: false, // an HTML legend in the caption: plotly would measure its text each redraw
    hovermode: hover,
    hoverlabel: { font: { size: 11 } },
    xaxis: { ...axis, type: "linear", tickformat: "d", tickangle: 0, title: { text: xTitle, font: { size: 10, color: t.muted } } },
    yaxis: { ...axis, type: logY ? "log" : "linear", exponentformat: "power" },
    uirevision: "lw",
  };
}

const CONFIG = { displayModeBar: false, responsive: false, scrollZoom: false, displaylogo: false };

/** Batches and epochs are integers: one tick per unit while there are few, then plotly's. */
export function integerDtick(lastX) {
  return lastX <= 10 ? 1 : null;
}

function lastOf(...arrays) {
  return Math.max(0, ...arrays.map((a) => (a.length ? a[a.length - 1] : 0)));
}

/** Vertical dashed lines where lr was edited (store `marks`: [{x, text}]). */
function markShapes(marks, t) {
  const shapes = [], annotations = [];
  for (const m of marks) {
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: m.x, x1: m.x, y0: 0, y1: 1, line: { color: t.muted, width: 1, dash: "dash" } });
    annotations.push({ xref: "x", yref: "paper", x: m.x, y: 1, yanchor: "top", xanchor: "left", text: m.label, showarrow: false, font: { size: 9, color: t.muted } });
  }
  return { shapes, annotations };
}

/** The caption's legend, from the traces drawn (so traces added by other parts show too). */
function fillLegend(legend, data) {
  const items = [];
  for (const tr of data || []) {
    if (tr.showlegend === false || !tr.name) continue;
    const line = tr.line || {};
    const swatch = h("span", { class: "lw-swatch", "aria-hidden": "true" });
    swatch.style.borderTopColor = line.color || "currentColor";
    swatch.style.borderTopStyle = line.dash === "dot" ? "dotted" : line.dash === "dash" ? "dashed" : "solid";
    swatch.style.opacity = tr.opacity === undefined ? "1" : String(Math.max(0.6, tr.opacity));
    items.push(h("span", { class: "lw-legend-item" }, swatch, h("span", { text: tr.name })));
  }
  legend.replaceChildren(...items);
}

/**
 * When plots redraw: `request()` asks for a round; rounds are at least `period` ms apart,
 * where period adapts to what a round costs and, while the run trains, to the page's drawing
 * budget (pace.js; a step or a pause is drawn at the plots' own pace); each step of a round runs in a task of its own
 * right after an animation frame (not inside the frame's task: the page's layout and paint of
 * that frame would add to it and make a long task); nothing runs while `paused()` (tab
 * hidden, plots off screen) until `request()` again.
 */
function redraws(step, paused, running) {
  const pace = pageClock(); // the page's drawing budget: PERIOD_MIN is stretched by it while training
  let timer = 0, frame = 0, task = 0, lastEnd = -Infinity, period = PERIOD_MIN, own = PERIOD_MIN, cost = 0, wanted = false;
  const afterFrame = () => { frame = requestAnimationFrame(() => { frame = 0; task = setTimeout(run, 0); }); };
  function request() {
    wanted = true;
    if (timer || frame || task || paused()) return;
    const delay = Math.max(0, lastEnd + (running() ? period : own) - performance.now()); // a step: its own pace
    timer = setTimeout(() => { timer = 0; afterFrame(); }, delay);
  }
  function run() {
    task = 0;
    if (paused()) return; // `wanted` stays: the next request() (visible again) draws
    wanted = false;
    const t0 = performance.now();
    const more = step();
    cost += performance.now() - t0;
    pace.spent(t0);
    if (more) { afterFrame(); return; }
    lastEnd = performance.now();
    own = Math.min(PERIOD_MAX, Math.max(PERIOD_MIN, COST_FACTOR * cost));
    period = Math.min(PERIOD_MAX, Math.max(pace.every(PERIOD_MIN), own));
    cost = 0;
    if (wanted) request();
  }
  return {
    request,
    resume() { if (wanted) request(); },
    cancel() { clearTimeout(timer); cancelAnimationFrame(frame); clearTimeout(task); timer = frame = task = 0; },
    get period() { return period; },
  };
}

/**
 * @param {HTMLElement} root
 * @param {*} model  The anywidget model (plotly.js comes through its `_lib` widget).
 * @param {*} host  anywidget's host (to reach that widget).
 * @param {() => void} redraw  Asks the view for a full redraw (once plotly.js is loaded).
 * @returns {import("../protocol.js").Part}
 */
export function mountPlots(root, model, host, redraw) {
  const grid = h("div", { class: "lw-plot-grid" });
  const placeholder = h("div", { class: "lw-plot-empty", text: "Loading plotly.js…" });
  const el = h("div", { class: "lw-plots" }, grid, placeholder);
  root.append(el);
  let Plotly = null;
  let disposed = false;
  let theme = null; // read when first drawing: a detached element has no computed style
  const panels = new Map(); // key -> { gd, box, legend, drawn, gen, plotted, width, ... }
  let logY = false;
  const logToggleId = uid("logy"); // one stream panel per view: one id
  let latest = null; // the store's state at the last update
  let needReset = false;
  let dearest = 0; // ms of the dearest panel redraw lately (decays by 10 % a redraw)
  let visible = true; // the plots intersect the viewport
  const resize = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const p = [...panels.values()].find((q) => q.gd === entry.target);
      const width = Math.round(entry.contentRect.width);
      if (!p || width <= 0 || width === p.width) continue;
      p.width = width;
      if (Plotly && p.plotted) Plotly.relayout(p.gd, { width }); // at once; the stream's points follow
      sched.request();
    }
  });
  const onScreen = new IntersectionObserver((entries) => {
    visible = entries[entries.length - 1].isIntersecting;
    if (visible) sched.resume();
  });
  onScreen.observe(el);
  const onVisibility = () => { if (!document.hidden) sched.resume(); };
  document.addEventListener("visibilitychange", onVisibility);
  const sched = redraws(drawStep, () => document.hidden || !visible, () => latest?.status?.state === "running");

  function panel(key, title, extra) {
    let p = panels.get(key);
    if (p) return p;
    const gd = h("div", { class: "lw-plot-area", role: "img", "aria-label": `Plot of ${title}` });
    const legend = h("span", { class: "lw-legend" });
    const box = h(
      "figure",
      { class: `lw-plot ${key === "__stream" ? "lw-plot-stream" : "lw-plot-metric"}`, "data-metric": key },
      h("figcaption", { class: "lw-plot-title" }, h("span", { text: title }), legend, extra || null),
      gd,
    );
    if (key === "__stream") grid.prepend(box);
    else grid.append(box);
    // One layout read per panel, when it is made; later widths come from the ResizeObserver.
    p = { gd, box, legend, plotted: false, version: "", legendKey: "", width: gd.clientWidth || 400 };
    panels.set(key, p);
    resize.observe(gd);
    return p;
  }

  /** The stream's traces, thinned to about a point per pixel (thin.js). */
  function streamTraces(series, width) {
    const traces = [];
    const names = Object.keys(series);
    names.forEach((name, i) => {
      const s = series[name];
      const color = i === 0 ? theme.train : theme.valid;
      const label = names.length > 1 ? name : "loss";
      const raw = minMax(s.x, s.y, width), ema = bucketEnds(s.x, s.ema, width / 2);
      traces.push(
        { type: "scatter", mode: "lines", name: `${label} (batch)`, x: raw.x, y: raw.y, line: { color, width: 1 }, opacity: lineAlpha(color, theme.bg), hovertemplate: "%{y:.4g}" },
        { type: "scatter", mode: "lines", name: `${label} (EMA)`, x: ema.x, y: ema.y, line: { color, width: 2 }, hovertemplate: "%{y:.4g}" },
      );
    });
    return traces;
  }

  function metricTraces(rec) {
    const mk = (set, color, dash) => ({
      type: "scatter", mode: rec[set].x.length <= MARKERS_MAX ? "lines+markers" : "lines", name: set,
      x: rec[set].x.slice(), y: rec[set].y.slice(),
      line: { color, width: 2, dash }, marker: { size: 5, color }, hovertemplate: "%{y:.4g}",
    });
    return [mk("train", theme.train, "solid"), mk("valid", theme.valid, "dot")];
  }

  /** The panels to draw and, for each, a key that changes whenever its figure would. */
  function wanted(state) {
    const out = [];
    const hover = hoverFor(state.status);
    const travel = state.travel;
    const series = state.stream.series;
    const names = Object.keys(series);
    if (names.some((n) => series[n].x.length)) {
      const lens = names.map((n) => `${n}:${series[n].gen}:${series[n].x.length}`).join(",");
      const width = (panels.get("__stream") || {}).width; // the points drawn follow it (thin.js)
      const snaps = JSON.stringify(snapshotMarkers(state.timeline.marks, state.pick, "__stream"));
      out.push(["__stream", `${lens}|${hover}|${(state.marks || []).length}|${logY}|${width}|${snaps}`]);
    }
    for (const metric of state.metricOrder) {
      const rec = state.records[metric];
      const overlay = travel ? JSON.stringify([snapshotMarkers(state.timeline.marks, state.pick, metric), overlayTraces(travel, metric, MARKERS_MAX).map((t) => [t.name, t.x.length, t.y[t.y.length - 1]])]) : "";
      out.push([metric, `${rec.gen}:${rec.train.x.length}:${rec.valid.x.length}|${hover}|${overlay}`]);
    }
    return out;
  }

  /** The whole figure of panel `key`: traces, the overlay's, and every shape. */
  function figure(state, key) {
    const travel = state.travel;
    let data, layout;
    if (key === "__stream") {
      const series = state.stream.series;
      const names = Object.keys(series);
      const width = panels.get(key).width;
      data = streamTraces(series, width);
      layout = baseLayout(theme, "batch", logY, width, hoverFor(state.status));
      Object.assign(layout, markShapes(state.marks || [], theme));
      const dtick = integerDtick(lastOf(...names.map((n) => series[n].x)));
      if (dtick) Object.assign(layout.xaxis, { tick0: 0, dtick });
    } else {
      const rec = state.records[key];
      data = [...metricTraces(rec), ...overlayTraces(travel, key, MARKERS_MAX)];
      layout = baseLayout(theme, "epoch", false, panels.get(key).width, hoverFor(state.status));
      layout.shapes = [];
      const dtick = integerDtick(lastOf(rec.train.x, rec.valid.x));
      if (dtick) Object.assign(layout.xaxis, { tick0: 0, dtick });
    }
    const markers = markerShapes(snapshotMarkers(state.timeline.marks, state.pick, key), theme);
    layout.shapes.push(...markers.shapes);
    layout.annotations = [...(layout.annotations || []), ...markers.annotations];
    return { data, layout };
  }

  /** Draw panel `key` now: one Plotly.react (data, overlay, shapes: one redraw). */
  function drawPanel(state, key, version) {
    const p = key === "__stream" ? panels.get(key) || streamPanel() : panel(key, key);
    const { data, layout } = figure(state, key);
    Plotly.react(p.gd, data, layout, CONFIG);
    p.plotted = true;
    p.version = version;
    const legendKey = data.map((t) => `${t.name}:${t.line && t.line.color}`).join(",");
    if (legendKey !== p.legendKey) { p.legendKey = legendKey; fillLegend(p.legend, data); }
  }

  function streamPanel() {
    return panel("__stream", "loss per batch", h(
      "span", { class: "lw-logy" },
      h("input", { type: "checkbox", id: logToggleId, class: "lw-logy-check", onChange: (e) => {
        logY = e.target.checked;
        if (latest) { // at once: the person is looking at it
          const item = wanted(latest).find(([k]) => k === "__stream");
          if (item) drawPanel(latest, ...item);
        }
      } }),
      h("label", { for: logToggleId, text: "log y" }),
    ));
  }

  /**
   * One step of a redraw round: the panels with something new, in one task while the next
   * one, at the cost of the dearest redraw seen lately, would end under SLICE_MS (the first
   * always); true if more wait (drawn after the next frame). Both the task and the frame
   * after it (which lays out what plotly changed) stay short.
   */
  function drawStep() {
    if (!Plotly || disposed || !latest) return false;
    const state = latest;
    if (!theme) theme = readTheme(root);
    if (needReset) { needReset = false; reset(); }
    const dirty = wanted(state).filter(([key, version]) => {
      const p = panels.get(key);
      return !p || !p.plotted || p.version !== version;
    });
    const t0 = performance.now();
    let i = 0;
    while (i < dirty.length && (i === 0 || performance.now() - t0 + dearest <= SLICE_MS)) {
      const t = performance.now();
      drawPanel(state, ...dirty[i++]);
      dearest = Math.max(0.9 * dearest, performance.now() - t); // forgets slowly
    }
    placeholder.hidden = panels.size > 0;
    return i < dirty.length;
  }

  function reset() {
    for (const p of panels.values()) {
      resize.unobserve(p.gd);
      if (Plotly) Plotly.purge(p.gd);
      p.box.remove();
    }
    panels.clear();
  }

  /** @param {import("../protocol.js").State} state @param {Set<string>} changed */
  function update(state, changed) {
    if (changed.has("theme")) retheme();
    if (changed.has("snapshot")) needReset = true;
    latest = state;
    if (Plotly && !disposed) sched.request();
  }

  function retheme() {
    theme = null;
    for (const p of panels.values()) p.plotted = false; // next frame redraws in the new colours
  }

  getPlotly(model, host).then((P) => {
    if (disposed) return; // the view went away while plotly.js loaded: draw nothing
    Plotly = P;
    placeholder.textContent = "Plots appear when training starts.";
    redraw();
  }).catch((error) => console.error("[luzwidget] plotly.js failed to load", error));

  return {
    update,
    cleanup() {
      disposed = true;
      sched.cancel();
      resize.disconnect();
      onScreen.disconnect();
      document.removeEventListener("visibilitychange", onVisibility);
      if (Plotly) for (const p of panels.values()) Plotly.purge(p.gd);
      panels.clear();
    },
  };
}
