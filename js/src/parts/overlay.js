// Time travel on the plots: the other runs of the family (parent, branches) overlaid on each
// metric panel in their own colours, legend naming what differs ("lr 0.05 from epoch 1"),
// and the snapshots as dotted markers on the x axes (batch on the loss stream, epoch on the
// metric panels). plots.js calls syncOverlay once per frame, after it drew; whenever it has
// redrawn a panel from scratch (Plotly.react drops what we added), the overlay is added again.

const PALETTE = ["#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#ad1457", "#5d4037", "#283593"];
const MINE = "lw-overlay";

/** The colour of the family's `i`-th run (main first) when it is overlaid. */
export function familyColor(i) {
  return PALETTE[i % PALETTE.length];
}

function legendName(member, set) {
  return member.name === "main" ? `main · ${set}` : `${member.label} · ${set}`;
}

function tracesFor(family, metric) {
  const out = [];
  family.forEach((m, i) => {
    if (m.this) return;
    const sets = (m.curves || {})[metric] || {};
    for (const set of ["train", "valid"]) {
      const pts = sets[set];
      if (!pts || !pts.length) continue;
      const color = familyColor(i);
      out.push({
        type: "scatter", mode: "lines+markers", meta: MINE, name: legendName(m, set),
        x: pts.map((p) => p[0]), y: pts.map((p) => p[1]),
        line: { color, width: 1.5, dash: set === "valid" ? "dot" : "solid" },
        marker: { size: 4, color }, opacity: 0.85, hovertemplate: "%{y:.4g}",
      });
    }
  });
  return out;
}

function marker(x, color) {
  return { type: "line", name: MINE, xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, layer: "below", line: { color, width: 1, dash: "dot" } };
}

function shapesFor(snapshots, key, theme) {
  const color = theme.muted || "#888";
  if (key === "__stream") return snapshots.filter((s) => s[5] !== null && s[5] > 0).map((s) => marker(s[5], color));
  const epochs = new Set(snapshots.filter((s) => s[3] === "e").map((s) => s[1]));
  return [...epochs].map((e) => marker(e, color));
}

function ours(gd) {
  const idx = [];
  (gd.data || []).forEach((t, i) => { if (t.meta === MINE) idx.push(i); });
  return idx;
}

/**
 * Bring every plotted panel's overlay up to date (a no-op when nothing changed).
 * @param {*} Plotly
 * @param {Map<string, {gd: HTMLElement, plotted: boolean}>} panels  plots.js's panels.
 * @param {import("../protocol.js").State} state
 * @param {{muted: string}} theme
 * @returns {string[]} the panels whose overlay changed (their legends need filling again)
 */
export function syncOverlay(Plotly, panels, state, theme) {
  const travel = state.travel;
  const redrawn = [];
  if (!Plotly || !travel) return redrawn;
  for (const [key, p] of panels) {
    const gd = p.gd;
    if (!p.plotted || !gd._fullLayout) continue;
    const traces = key === "__stream" ? [] : tracesFor(travel.family || [], key);
    const shapes = shapesFor(travel.snapshots || [], key, theme);
    const want = JSON.stringify([traces, shapes]);
    const have = ours(gd);
    // plots.js draws its own shapes (lr-edit marks) on the same layout: keep theirs.
    const others = (gd.layout.shapes || []).filter((s) => s.name !== MINE);
    const mine = (gd.layout.shapes || []).length - others.length;
    const intact = have.length === traces.length && mine === shapes.length;
    if (gd.__lwOverlay === want && intact) continue;
    gd.__lwOverlay = want;
    if (have.length) Plotly.deleteTraces(gd, have);
    if (traces.length) Plotly.addTraces(gd, traces);
    Plotly.relayout(gd, { shapes: [...others, ...shapes] });
    redrawn.push(key);
  }
  return redrawn;
}
