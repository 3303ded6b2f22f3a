// Time travel on the plots: the other runs of the family (parent, branches) overlaid on each
// metric panel in their own colours, legend naming what differs ("lr 0.05 from epoch 1"),
// and the labelled and picked snapshots as markers on the x axes (batch on the loss stream,
// epoch on the metric panels). Pure functions: plots.js puts what they return into the one figure it
// draws for a panel, so the overlay costs no extra redraw.

const PALETTE = ["#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#ad1457", "#5d4037", "#283593"];
const MINE = "lw-overlay";

/** The colour of the family's `i`-th run (main first) when it is overlaid. */
export function familyColor(i) {
  return PALETTE[i % PALETTE.length];
}

function legendName(member, set) {
  return member.name === "main" ? `main · ${set}` : `${member.label} · ${set}`;
}

/**
 * The other runs' curves of `metric` (none on the loss stream: `key` "__stream").
 * @param {import("../protocol.js").State["travel"]} travel
 * @param {string} key
 * @param {number} markersMax  markers on a curve with at most this many points
 */
export function overlayTraces(travel, key, markersMax) {
  const out = [];
  if (!travel || key === "__stream") return out;
  (travel.family || []).forEach((m, i) => {
    if (m.this) return;
    const sets = (m.curves || {})[key] || {};
    for (const set of ["train", "valid"]) {
      const pts = sets[set];
      if (!pts || !pts.length) continue;
      const color = familyColor(i);
      out.push({
        type: "scatter", mode: pts.length <= markersMax ? "lines+markers" : "lines", meta: MINE,
        name: legendName(m, set), x: pts.map((p) => p[0]), y: pts.map((p) => p[1]),
        line: { color, width: 1.5, dash: set === "valid" ? "dot" : "solid" },
        marker: { size: 4, color }, opacity: 0.85, hovertemplate: "%{y:.4g}",
      });
    }
  });
  return out;
}

const NAMED_MAX = 12; // the most named markers on a plot (the latest)

/** Where snapshot `s` sits on panel `key`'s x axis (batches on the stream, else epochs). */
function markX(s, key) {
  if (key === "__stream") return s[5] !== null && s[5] > 0 ? s[5] : null;
  if (s[3] === "e") return s[1];
  return s[3] === "s" ? null : s[1] + 0.5; // inside an epoch: half way through it
}

/**
 * The snapshots drawn on panel `key`: only the labelled (manual) ones, named, and the picked
 * one (automatic snapshots, one an epoch, would bury the plot: the timeline shows them).
 * @param {import("../protocol.js").Mark[]} marks
 * @param {number | null} picked
 * @param {string} key
 * @returns {{named: Array<[number, string]>, picked: number | null}}
 */
export function snapshotMarkers(marks, picked, key) {
  const named = [];
  let at = null;
  for (const s of marks || []) {
    const x = markX(s, key);
    if (x === null) continue;
    if (s[0] === picked) at = x;
    if (s[4]) named.push([x, s[4]]);
  }
  return { named: named.slice(-NAMED_MAX), picked: at };
}

/**
 * A panel's snapshot markers as plotly shapes and annotations: the named ones as one dotted
 * path (one SVG element, however many) with their labels, the picked one a solid line.
 * @param {{named: Array<[number, string]>, picked: number | null}} m
 * @param {{muted: string, accent?: string}} theme
 */
export function markerShapes(m, theme) {
  const shapes = [], annotations = [];
  if (m.named.length) {
    shapes.push({
      type: "path", name: MINE, xref: "x", yref: "paper", layer: "below",
      path: m.named.map(([x]) => `M${x},0V1`).join(""),
      line: { color: theme.muted || "#888", width: 1, dash: "dot" },
    });
    for (const [x, text] of m.named) {
      annotations.push({ xref: "x", yref: "paper", x, y: 0, yanchor: "bottom", xanchor: "left", text, showarrow: false, font: { size: 9, color: theme.muted || "#888" } });
    }
  }
  if (m.picked !== null) {
    shapes.push({
      type: "line", name: MINE, xref: "x", yref: "paper", x0: m.picked, x1: m.picked, y0: 0, y1: 1,
      line: { color: theme.accent || "#1976d2", width: 1.5 },
    });
  }
  return { shapes, annotations };
}
