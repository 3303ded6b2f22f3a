// Layers over time: the update-to-data ratio ‖Δw‖/‖w‖ of each parameter as log10 curves over
// the sampled steps (a dashed guide at 1e-3, i.e. -3), the share of dead (ReLU-like) and
// saturated (Tanh/Sigmoid) units of each module, and one layer's histograms over time as a
// heatmap (one column per sample, as fastai's ActivationStats.color_dim; a select picks the
// layer and weights, gradients or outputs). The kernel computes it only while the panel is
// open ({cmd: "panel", name: "history", open}) and sends only new columns (the store keeps
// them: mergeHistory); a pick is {cmd: "panel", name: "history", open: true, pick}. Drawn at
// most every 2 s while the run trains (stretched by the page's drawing budget, pace.js; at
// once at a pause or step), its plots in one task while it stays short, not while the tab is
// hidden or the panel off screen; plotly through plotly_slot.js,
// the heatmap on a canvas (plotly's basic bundle has no heatmap).
import { h, setText } from "../dom.js";
import { getPlotly } from "../plotly_slot.js";
import { pageClock } from "../pace.js";
import { onDemandPanel } from "./on_demand.js";

const HEIGHT = 180;
const RUNNING_MS = 2000; // while the run trains, a redraw round at most this often (plotly: ~15 ms a plot)
const SLICE_MS = 16; // a round goes on drawing in the same task while under this (one frame)
const PALETTE = ["#1976d2", "#e65100", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#ad1457", "#558b2f", "#5e35b1"];
const DARK_PALETTE = ["#64b5f6", "#ffb74d", "#81c784", "#ce93d8", "#ef9a9a", "#4dd0e1", "#bcaaa4", "#f48fb1", "#aed581", "#b39ddb"];
const CONFIG = { displayModeBar: false, responsive: false, scrollZoom: false, displaylogo: false };
const WHAT = { acts: "outputs", weights: "weights", grads: "gradients" };

/**
 * The store's history after a kernel delta: columns appended (or replaced on `reset`),
 * at most `max` kept. @param {*} held @param {*} msg
 */
export function mergeHistory(held, msg) {
  if (!msg.open) return { ...msg, cols: [], gen: (held?.gen || 0) + 1 };
  const reset = msg.reset || !held || !held.open;
  const cols = reset ? msg.cols.slice() : [...held.cols, ...msg.cols];
  const max = msg.max || 1000;
  if (cols.length > max) cols.splice(0, cols.length - max);
  return { ...msg, cols, gen: (held?.gen || 0) + (reset ? 1 : 0) };
}

/** log10 of a positive number, else null (a gap). @param {number | null} v */
export function log10(v) {
  return typeof v === "number" && v > 0 ? Math.log10(v) : null;
}

/** A count's colour level in [0, 1]: log-scaled against the largest count. */
export function level(count, max) {
  return max > 0 && count > 0 ? Math.log1p(count) / Math.log1p(max) : 0;
}

function cssColor(cs, name, fallback) {
  const ctx = document.createElement("canvas").getContext("2d");
  const css = cs.getPropertyValue(name).trim();
  if (!ctx || !css) return fallback;
  ctx.fillStyle = fallback;
  ctx.fillStyle = css;
  return /^(#|rgb)/.test(ctx.fillStyle) ? ctx.fillStyle : fallback;
}

function rgb(color) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) { const n = parseInt(hex[1], 16); return [n >> 16, (n >> 8) & 255, n & 255]; }
  const m = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(color);
  return m ? [+m[1], +m[2], +m[3]] : [255, 255, 255];
}

function readTheme(el) {
  const cs = getComputedStyle(el);
  const bg = cssColor(cs, "--lw-bg", "#ffffff");
  const [r, g, b] = rgb(bg);
  const dark = 0.299 * r + 0.587 * g + 0.114 * b < 128;
  return {
    fg: cssColor(cs, "--lw-fg", "#1f2328"), muted: cssColor(cs, "--lw-fg2", "#59636e"), bg, dark,
    palette: dark ? DARK_PALETTE : PALETTE, font: cs.getPropertyValue("--lw-font").trim() || "system-ui, sans-serif",
  };
}

function layout(t, width, y) {
  const axis = { gridcolor: `rgba(${rgb(t.fg).join(",")},0.12)`, linecolor: `rgba(${rgb(t.fg).join(",")},0.2)`, zeroline: false, automargin: false, tickfont: { size: 10 }, ticklabeloverflow: "allow" };
  return {
    width, height: HEIGHT, autosize: false, margin: { l: 46, r: 8, t: 6, b: 32 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", showlegend: false,
    font: { family: t.font, size: 11, color: t.fg }, hovermode: "closest", uirevision: "lw",
    xaxis: { ...axis, tickformat: "d", title: { text: "step", font: { size: 10, color: t.muted } } },
    yaxis: { ...axis, ...y },
  };
}

function legend(box, names, t) {
  const key = JSON.stringify([names.slice(0, 13), t.palette]);
  if (box.dataset.key === key) return; // the same legend: no new elements (each is restyled)
  box.dataset.key = key;
  box.replaceChildren(...names.slice(0, 12).map((name, i) => {
    const sw = h("span", { class: "lw-swatch", "aria-hidden": "true" });
    sw.style.borderTopColor = t.palette[i % t.palette.length];
    sw.style.borderTopStyle = name.endsWith(" saturated") ? "dotted" : "solid";
    return h("span", { class: "lw-legend-item" }, sw, h("span", { text: name }));
  }), ...(names.length > 12 ? [h("span", { class: "lw-legend-item", text: `+${names.length - 12}` })] : []));
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {*} model @param {*} host  (plotly.js comes through the model's `_lib` widget)
 * @returns {import("../protocol.js").Part}
 */
export function mountHistory(root, store, model, host) {
  const ratioGd = h("div", { class: "lw-plot-area lw-history-ratio", role: "img", "aria-label": "Update ratio per layer, log10" });
  const shareGd = h("div", { class: "lw-plot-area lw-history-share", role: "img", "aria-label": "Dead and saturated share per layer" });
  const canvas = h("canvas", { class: "lw-history-heat", role: "img", "aria-label": "Histograms over time" });
  const ratioLegend = h("span", { class: "lw-legend" });
  const shareLegend = h("span", { class: "lw-legend" });
  const select = h("select", { class: "lw-history-pick", "aria-label": "Histograms of", onChange: () => {
    store.command({ cmd: "panel", name: "history", open: true, pick: select.value });
  } });
  const range = h("span", { class: "lw-history-range" });
  const stepFrom = h("span");
  const stepTo = h("span");
  const fig = (cls, title, extra, body) => h("figure", { class: `lw-plot lw-history-fig ${cls}` },
    h("figcaption", { class: "lw-plot-title" }, h("span", { text: title }), extra), body);
  const grid = h("div", { class: "lw-history-grid" },
    fig("lw-history-ratio-fig", "log10 ‖Δw‖/‖w‖", ratioLegend, ratioGd),
    fig("lw-history-share-fig", "dead / saturated share", shareLegend, shareGd),
    fig("lw-history-heat-fig", "histograms over time", h("span", { class: "lw-history-bar" }, select, range),
      h("div", {}, canvas, h("div", { class: "lw-history-axis" }, stepFrom, h("span", { text: "step" }), stepTo))));
  const panel = onDemandPanel(root, store, "history", "Layers over time", "lw-history", h("div", { class: "lw-history-body" }, grid));
  let Plotly = null;
  let theme = null;
  let latest = null;
  const pace = pageClock(); // the page's drawing budget: RUNNING_MS is stretched by it
  let drawn = { gen: -1, n: -1, theme: null };
  let task = 0;
  let choicesKey = "";
  let running = false;
  let lastRound = -Infinity;
  let waitTimer = 0;
  let visible = true; // the panel intersects the viewport
  const onScreen = new IntersectionObserver((entries) => {
    visible = entries[entries.length - 1].isIntersecting;
    if (visible) plan();
  });
  onScreen.observe(panel.el);
  const onVisibility = () => { if (!document.hidden) plan(); };
  document.addEventListener("visibilitychange", onVisibility);
  getPlotly(model, host).then((P) => { Plotly = P; if (latest) plan(); })
    .catch((error) => console.error("[luzwidget] plotly.js failed to load", error));

  function ratioFigure(part, width) {
    const x = part.cols.map((c) => c[1]);
    const data = part.params.map((name, i) => ({
      type: "scatter", mode: "lines", name, x, y: part.cols.map((c) => log10(c[4][i])),
      line: { color: theme.palette[i % theme.palette.length], width: 1.5 }, hovertemplate: `${name}: %{y:.2f}<extra></extra>`,
    }));
    const lay = layout(theme, width, { title: { text: "log10", font: { size: 10, color: theme.muted } } });
    lay.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: -3, y1: -3, line: { color: theme.muted, width: 1, dash: "dash" } }];
    lay.annotations = [{ xref: "paper", x: 1, yref: "y", y: -3, xanchor: "right", yanchor: "bottom", text: "1e-3", showarrow: false, font: { size: 9, color: theme.muted } }];
    return { data, layout: lay };
  }

  function shareFigure(part, width) {
    const x = part.cols.map((c) => c[1]);
    const data = [
      ...part.dead.map((name, i) => ({ name: `${name} dead`, i, k: 5 })),
      ...part.sat.map((name, i) => ({ name: `${name} saturated`, i, k: 6 })),
    ].map(({ name, i, k }, j) => ({
      type: "scatter", mode: "lines", name, x, y: part.cols.map((c) => c[k][i]),
      line: { color: theme.palette[j % theme.palette.length], width: 1.5, dash: k === 6 ? "dot" : "solid" },
      hovertemplate: `${name}: %{y:.1%}<extra></extra>`,
    }));
    return { data, layout: layout(theme, width, { range: [-0.02, 1.02], tickformat: ".0%" }) };
  }

  function drawHeat(part) {
    const cols = part.cols.filter((c) => Array.isArray(c[7]));
    const width = Math.max(120, canvas.clientWidth || 300); // CSS: the figure's width
    const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round((HEIGHT - 40) * dpr);
    const ctx = canvas.getContext("2d", { willReadFrequently: true }); // in memory, not a GPU layer
    if (!ctx) return;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!cols.length) return;
    const bins = cols[0][7].length;
    let max = 0;
    for (const c of cols) for (const v of c[7]) if (v > max) max = v;
    const img = ctx.createImageData(cols.length, bins); // one pixel per (sample, bin), scaled up
    const [br, bg, bb] = rgb(theme.bg);
    const ink = theme.dark ? [255, 183, 77] : [13, 71, 161];
    cols.forEach((c, x) => {
      c[7].forEach((v, b) => {
        const a = level(v, max);
        const at = 4 * ((bins - 1 - b) * cols.length + x); // low values at the bottom
        img.data[at] = br + (ink[0] - br) * a;
        img.data[at + 1] = bg + (ink[1] - bg) * a;
        img.data[at + 2] = bb + (ink[2] - bb) * a;
        img.data[at + 3] = 255;
      });
    });
    const off = document.createElement("canvas");
    off.width = cols.length;
    off.height = bins;
    off.getContext("2d")?.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    const e = part.edges;
    setText(range, e ? `${cols.length} samples · values ${e[0].toPrecision(2)} (bottom) to ${e[1].toPrecision(2)} (top)` : "");
    setText(stepFrom, String(cols[0][1]));
    setText(stepTo, String(cols[cols.length - 1][1]));
  }

  function fillSelect(part) {
    const key = JSON.stringify([part.choices, part.pick]);
    if (key === choicesKey) return;
    choicesKey = key;
    const groups = Object.entries(part.choices || {}).filter(([, names]) => names.length).map(([what, names]) =>
      h("optgroup", { label: WHAT[what] || what }, ...names.map((name) => h("option", { value: `${what}|${name}`, text: `${name} · ${WHAT[what] || what}` }))));
    select.replaceChildren(...groups);
    if (part.pick) select.value = part.pick;
  }

  /**
   * Draw what changed, the plots in one task while it stays under SLICE_MS (no long task);
   * while the run trains at most every RUNNING_MS (stretched by the page's drawing budget),
   * at once otherwise; nothing while the tab is hidden or the panel off screen.
   */
  function plan() {
    if (task || waitTimer || !latest || document.hidden || !visible) return;
    const steps = [];
    const part = latest;
    if (!theme) theme = readTheme(root);
    if (drawn.gen === part.gen && drawn.n === part.cols.length && drawn.theme === theme) return;
    const wait = lastRound + (running ? pace.every(RUNNING_MS) : 0) - performance.now();
    if (wait > 0) { waitTimer = setTimeout(() => { waitTimer = 0; plan(); }, wait); return; }
    lastRound = performance.now();
    fillSelect(part);
    const width = (gd) => Math.max(200, gd.clientWidth || 300);
    if (Plotly) {
      steps.push(() => { const f = ratioFigure(part, width(ratioGd)); Plotly.react(ratioGd, f.data, f.layout, CONFIG); legend(ratioLegend, part.params, theme); });
      steps.push(() => { const f = shareFigure(part, width(shareGd)); Plotly.react(shareGd, f.data, f.layout, CONFIG); legend(shareLegend, f.data.map((d) => d.name), theme); });
    }
    steps.push(() => drawHeat(part));
    drawn = { gen: part.gen, n: part.cols.length, theme: Plotly ? theme : null };
    const next = () => { // steps in one task while it is short: one frame, one compositing update
      task = 0;
      const t0 = performance.now();
      try {
        do {
          const step = steps.shift();
          if (!step) { if (latest !== part) plan(); return; }
          step();
        } while (performance.now() - t0 < SLICE_MS);
      } finally {
        pace.spent(t0);
      }
      task = setTimeout(next, 0);
    };
    task = setTimeout(next, 0);
  }

  return {
    update(state, changed) {
      if (changed.has("theme")) theme = null;
      running = state.status?.state === "running";
      const part = panel.part(state, changed) || (changed.has("theme") && state.history?.open ? state.history : null);
      if (!part) return;
      latest = part;
      const n = part.cols.length;
      setText(panel.hint, n ? `${n} samples · step ${part.cols[n - 1][1]}` : "sampled at each step, a few times a second while training");
      plan();
    },
    cleanup() {
      clearTimeout(task);
      clearTimeout(waitTimer);
      onScreen.disconnect();
      document.removeEventListener("visibilitychange", onVisibility);
      if (Plotly) { Plotly.purge(ratioGd); Plotly.purge(shareGd); }
    },
  };
}
