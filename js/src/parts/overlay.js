// Time travel on the plots: the other runs of the family (parent, branches) overlaid on each
// metric panel in their own colours, legend naming what differs ("lr 0.05 from epoch 1"),
// and the snapshots as dotted markers on the x axes (batch on the loss stream, epoch on the
// metric panels). Pure functions: plots.js puts what they return into the one figure it
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

/** Where the snapshots sit on panel `key`'s x axis (batches on the stream, else epochs). */
export function markerXs(travel, key) {
  const snapshots = (travel && travel.snapshots) || [];
  if (key === "__stream") return snapshots.filter((s) => s[5] !== null && s[5] > 0).map((s) => s[5]);
  return [...new Set(snapshots.filter((s) => s[3] === "e").map((s) => s[1]))];
}

/**
 * All snapshot markers of a panel as one dotted path (one SVG element, however many).
 * @param {number[]} xs
 * @param {{muted: string}} theme
 */
export function markerShape(xs, theme) {
  if (!xs.length) return null;
  return {
    type: "path", name: MINE, xref: "x", yref: "paper", layer: "below",
    path: xs.map((x) => `M${x},0V1`).join(""),
    line: { color: theme.muted || "#888", width: 1, dash: "dot" },
  };
}
