// Live plots with plotly.js: one panel per metric (train and valid per epoch) and the
// per-batch loss stream (raw + EMA). Points come from the store; each view remembers how
// many it drew and appends the rest with Plotly.extendTraces, once per animation frame.
import { h, uid } from "../dom.js";
import { getPlotly } from "../plotly_slot.js";
import { syncOverlay } from "./overlay.js"; // time travel: branches' curves, snapshot markers

// plotly parses only plain colours: let a canvas normalise whatever CSS gives us.
function plainColor(css, fallback) {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx || !css) return fallback;
  ctx.fillStyle = fallback;
  ctx.fillStyle = css;
  const out = ctx.fillStyle;
  return /^(#|rgb)/.test(out) ? out : fallback;
}

function withAlpha(color, alpha) {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(color);
  return rgb ? `rgba(${rgb[1]},${rgb[2]},${rgb[3]}, ${alpha})` : color;
}

function readTheme(el) {
  const cs = getComputedStyle(el);
  const v = (name, fallback) => plainColor(cs.getPropertyValue(name).trim(), fallback);
  const fg = v("--lw-fg", "#1f2328");
  return {
    fg,
    muted: v("--lw-fg2", "#57606a"),
    grid: withAlpha(fg, 0.12),
    train: v("--lw-train", "#1976d2"),
    valid: v("--lw-valid", "#ef6c00"),
    font: cs.getPropertyValue("--lw-font").trim() || "system-ui, sans-serif",
  };
}

function baseLayout(t, xTitle, logY) {
  const axis = { gridcolor: t.grid, linecolor: t.grid, zerolinecolor: t.grid, automargin: true, tickfont: { size: 10 } };
  return {
    height: 190,
    margin: { l: 46, r: 8, t: 18, b: 30 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: t.font, size: 11, color: t.fg },
    showlegend: true,
    legend: { orientation: "h", x: 1, xanchor: "right", y: 1.0, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)", font: { size: 10, color: t.muted } },
    hovermode: "x unified",
    hoverlabel: { font: { size: 11 } },
    xaxis: { ...axis, title: { text: xTitle, font: { size: 10, color: t.muted }, standoff: 2 } },
    yaxis: { ...axis, type: logY ? "log" : "linear", exponentformat: "power" },
    uirevision: "lw",
  };
}

const CONFIG = { displayModeBar: false, responsive: false, scrollZoom: false, displaylogo: false };

function epochDtick(rec) {
  const last = Math.max(0, ...rec.train.x.slice(-1), ...rec.valid.x.slice(-1));
  return last <= 10 ? 1 : null;
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
  const panels = new Map(); // key -> { gd, drawn, gen, kind, box }
  let logY = false;
  const logToggleId = uid("logy"); // one stream panel per view: one id
  const resize = new ResizeObserver((entries) => {
    if (!Plotly) return;
    for (const entry of entries) {
      const gd = entry.target;
      if (gd.offsetWidth > 0 && gd._fullLayout) Plotly.Plots.resize(gd);
    }
  });

  function panel(key, title, extra) {
    let p = panels.get(key);
    if (p) return p;
    const gd = h("div", { class: "lw-plot-area", role: "img", "aria-label": `Plot of ${title}` });
    const box = h(
      "figure",
      { class: `lw-plot ${key === "__stream" ? "lw-plot-stream" : "lw-plot-metric"}`, "data-metric": key },
      h("figcaption", { class: "lw-plot-title" }, h("span", { text: title }), extra || null),
      gd,
    );
    if (key === "__stream") grid.prepend(box);
    else grid.append(box);
    p = { gd, box, drawn: [], gen: -1, plotted: false };
    panels.set(key, p);
    resize.observe(gd);
    return p;
  }

  function streamTraces(series) {
    const traces = [];
    const names = Object.keys(series);
    names.forEach((name, i) => {
      const s = series[name];
      const color = i === 0 ? theme.train : theme.valid;
      const label = names.length > 1 ? name : "loss";
      traces.push(
        { type: "scatter", mode: "lines", name: `${label} (batch)`, x: s.x.slice(), y: s.y.slice(), line: { color, width: 1 }, opacity: 0.35, hovertemplate: "%{y:.4g}" },
        { type: "scatter", mode: "lines", name: `${label} (EMA)`, x: s.x.slice(), y: s.ema.slice(), line: { color, width: 2 }, hovertemplate: "%{y:.4g}" },
      );
    });
    return traces;
  }

  function metricTraces(rec) {
    const mk = (set, color, dash) => ({
      type: "scatter", mode: "lines+markers", name: set, x: rec[set].x.slice(), y: rec[set].y.slice(),
      line: { color, width: 2, dash }, marker: { size: 5, color }, hovertemplate: "%{y:.4g}",
    });
    return [mk("train", theme.train, "solid"), mk("valid", theme.valid, "dot")];
  }

  function drawStream(state) {
    const series = state.stream.series;
    const names = Object.keys(series);
    if (!names.length || !names.some((n) => series[n].x.length)) return;
    const p = panels.get("__stream") || panel("__stream", "loss per batch", h(
      "span", { class: "lw-logy" },
      h("input", { type: "checkbox", id: logToggleId, class: "lw-logy-check", onChange: (e) => {
        logY = e.target.checked;
        Plotly.relayout(panels.get("__stream").gd, { "yaxis.type": logY ? "log" : "linear" });
      } }),
      h("label", { for: logToggleId, text: "log y" }),
    ));
    const gen = names.map((n) => series[n].gen).join(",") + "|" + names.join(",");
    if (!p.plotted || p.gen !== gen) {
      const layout = baseLayout(theme, "batch", logY);
      Plotly.react(p.gd, streamTraces(series), layout, CONFIG);
      p.plotted = true;
      p.gen = gen;
      p.drawn = names.map((n) => series[n].x.length);
      return;
    }
    const x = [], y = [], idx = [];
    names.forEach((n, i) => {
      const s = series[n];
      const from = p.drawn[i];
      if (s.x.length > from) {
        const nx = s.x.slice(from);
        x.push(nx, nx);
        y.push(s.y.slice(from), s.ema.slice(from));
        idx.push(2 * i, 2 * i + 1);
        p.drawn[i] = s.x.length;
      }
    });
    if (idx.length) Plotly.extendTraces(p.gd, { x, y }, idx);
  }

  function drawMetrics(state) {
    for (const metric of state.metricOrder) {
      const rec = state.records[metric];
      const p = panel(metric, metric);
      const lens = [rec.train.x.length, rec.valid.x.length];
      if (!p.plotted || p.gen !== rec.gen) {
        const layout = baseLayout(theme, "epoch", false);
        layout.xaxis.tickformat = "d";
        p.dtick = epochDtick(rec);
        Object.assign(layout.xaxis, p.dtick ? { tick0: 0, dtick: p.dtick } : {});
        Plotly.react(p.gd, metricTraces(rec), layout, CONFIG);
        p.plotted = true;
        p.gen = rec.gen;
        p.drawn = lens;
        continue;
      }
      const dtick = epochDtick(rec);
      if (dtick !== p.dtick) { // one tick per epoch while there are few, then plotly's choice
        p.dtick = dtick;
        Plotly.relayout(p.gd, dtick ? { "xaxis.tick0": 0, "xaxis.dtick": dtick } : { "xaxis.dtick": null, "xaxis.tick0": null });
      }
      const x = [], y = [], idx = [];
      ["train", "valid"].forEach((set, i) => {
        if (lens[i] > p.drawn[i]) {
          x.push(rec[set].x.slice(p.drawn[i]));
          y.push(rec[set].y.slice(p.drawn[i]));
          idx.push(i);
        }
      });
      p.drawn = lens;
      if (idx.length) Plotly.extendTraces(p.gd, { x, y }, idx);
    }
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
    if (!Plotly || disposed) return;
    if (!theme) theme = readTheme(root);
    if (changed.has("snapshot")) reset();
    drawStream(state);
    drawMetrics(state);
    syncOverlay(Plotly, panels, state, theme); // time travel (overlay.js): after plots drew
    placeholder.hidden = panels.size > 0;
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
      resize.disconnect();
      if (Plotly) for (const p of panels.values()) Plotly.purge(p.gd);
      panels.clear();
    },
  };
}
