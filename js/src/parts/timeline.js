// The time-travel timeline: one track along the run's batches (the loss stream's x), a
// mark per snapshot on one canvas (automatic ones small and faint; labelled and manual
// ones tall, in the accent colour and named), the current position, and the picked
// snapshot highlighted and named in a line under the track. Hover names the nearest
// mark; a click picks it; the track is a slider for the keyboard (arrows, Home/End,
// PageUp/PageDown; Escape: back to the latest). Marks may overlap at 1,000 epochs: one
// canvas draws them all (no DOM node per snapshot), and picking takes the nearest.
// The snapshots come as deltas (luzwidget/widgets/timeline.py; applied in store.js).
import { h, setData, setText } from "../dom.js";
import { pageClock } from "../pace.js";

const KIND_TEXT = { s: "the run's start", e: "end of epoch", i: "inside epoch", v: "inside epoch, validating" };
const HEIGHT = 44;
const PAD = 10; // px left and right of the track's ends
const BASE = 30; // the baseline's y
// While the run trains the track is drawn at most this often: hundreds of marks painted five
// times a second cost ~3 ms each time, for a position a person reads once in a while.
const RUNNING_MS = 1000;

/** The event a snapshot inside a batch was taken after, short ("" at a batch's end). */
export function eventText(event) {
  if (!event || /batch_end$/.test(event)) return "";
  return event.replace(/^on_(train_|valid_)?(batch_)?/, "").replace(/_/g, " ");
}

/** The snapshot's name: `start`, `e12` (an epoch end), `e13·b40` (inside), `e13·b40·after loss`. */
export function snapName(s) {
  const [, epoch, iter, kind, , , event] = s;
  if (kind === "s") return "start";
  if (kind === "e") return `e${epoch}`;
  const where = `e${epoch + 1}·${kind === "v" ? "valid " : ""}b${iter}`;
  const ev = eventText(event);
  return ev ? `${where}·${ev}` : where;
}

/** What hovering a mark says: its name and label, epoch, batch and kind. */
export function snapTitle(s) {
  const [, epoch, iter, kind, label, , event] = s;
  const where = kind === "s" ? "the run's start"
    : kind === "e" ? `end of epoch ${epoch}`
      : `epoch ${epoch + 1}, ${kind === "v" ? "validation " : ""}batch ${iter}${event ? ` (after ${event})` : ""}`;
  return `${snapName(s)}${label ? ` “${label}”` : ""}: ${where}`;
}

/** The marks that can be drawn (those with an x), in track order. */
export function placed(marks) {
  return marks.filter((s) => s[5] !== null && s[5] !== undefined).sort((a, b) => a[5] - b[5] || a[0] - b[0]);
}

/** Index in `sorted` of the mark nearest to `x` (-1: none). */
export function nearest(sorted, x) {
  let best = -1, dist = Infinity;
  for (let i = 0; i < sorted.length; i++) {
    const d = Math.abs(sorted[i][5] - x);
    if (d < dist || (d === dist && sorted[i][4])) { best = i; dist = d; } // a tie: the labelled, later
  }
  return best;
}

function attr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/**
 * @param {HTMLElement} root
 * @param {(number: number | null) => void} onPick  A mark was picked (null: none, the latest).
 */
export function mountTimeline(root, onPick) {
  const canvas = h("canvas", { class: "lw-timeline-canvas", height: HEIGHT, "aria-hidden": "true" });
  const tip = h("div", { class: "lw-timeline-tip", role: "tooltip", hidden: true });
  const track = h("div", {
    class: "lw-timeline", role: "slider", tabIndex: 0, "aria-label": "Snapshots",
    "aria-valuemin": 0, "aria-valuemax": 0, "aria-valuenow": 0, "aria-valuetext": "no snapshots",
    "data-lm-suppress-shortcuts": "true", // the arrow keys are ours, not the notebook's (Lumino)
  }, canvas, tip);
  const label = h("div", { class: "lw-timeline-label", "aria-live": "polite" });
  root.append(track, label);

  let sorted = []; // the marks drawn, in track order
  let picked = null; // snapshot number, or null: the latest
  let now = null; // where the run is (stream x)
  let span = 1;
  let width = 0;
  let colors = null;
  let key = "";
  let version = 0;
  let placedFrom = null; // the marks `sorted` was made from
  let lastDraw = -Infinity; // when update() last drew
  const pace = pageClock();
  const resize = new ResizeObserver((entries) => {
    const w = Math.round(entries[entries.length - 1].contentRect.width);
    if (w > 0 && w !== width) { width = w; key = ""; draw(); }
  });
  resize.observe(track);

  const px = (x) => PAD + ((width - 2 * PAD) * x) / span;
  const xAt = (clientX) => ((clientX - track.getBoundingClientRect().left - PAD) * span) / Math.max(1, width - 2 * PAD);

  function pick(i) {
    const s = sorted[i];
    picked = s ? s[0] : null;
    onPick(picked);
    draw();
  }

  track.addEventListener("click", (e) => {
    const i = nearest(sorted, xAt(e.clientX));
    if (i >= 0) pick(i);
  });
  track.addEventListener("pointermove", (e) => {
    const i = nearest(sorted, xAt(e.clientX));
    if (i < 0) { tip.hidden = true; return; }
    setText(tip, snapTitle(sorted[i]));
    tip.hidden = false;
    tip.style.left = `${Math.min(Math.max(0, px(sorted[i][5]) - 60), Math.max(0, width - 240))}px`;
  });
  track.addEventListener("pointerleave", () => { tip.hidden = true; });
  track.addEventListener("keydown", (e) => {
    if (!sorted.length) return;
    const at = sorted.findIndex((s) => s[0] === picked);
    const cur = at < 0 ? sorted.length - 1 : at;
    const moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -10, PageUp: 10 };
    let next = null;
    if (e.key in moves) next = cur + moves[e.key];
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = sorted.length - 1;
    else if (e.key === "Escape") { picked = null; onPick(null); draw(); e.preventDefault(); return; }
    if (next === null) return;
    e.preventDefault();
    pick(Math.max(0, Math.min(sorted.length - 1, next)));
  });

  function readColors() {
    const cs = getComputedStyle(track);
    const v = (name, fallback) => cs.getPropertyValue(name).trim() || fallback;
    return { fg: v("--lw-fg", "#1f2328"), muted: v("--lw-fg2", "#59636e"), accent: v("--lw-accent", "#1976d2"), font: v("--lw-font", "system-ui, sans-serif") };
  }

  /** Draw the track (nothing when nothing it shows changed). */
  function draw() {
    const chosen = sorted.find((s) => s[0] === picked) || sorted[sorted.length - 1] || null;
    const k = `${version}|${width}|${span}|${now}|${picked}|${sorted.length}|${sorted.length ? sorted[sorted.length - 1][0] : ""}|${colors ? 1 : 0}`;
    const i = chosen ? sorted.indexOf(chosen) : 0;
    attr(track, "aria-valuemax", String(Math.max(0, sorted.length - 1)));
    attr(track, "aria-valuenow", String(Math.max(0, i)));
    attr(track, "aria-valuetext", chosen ? snapTitle(chosen) : "no snapshots");
    setData(track, "picked", picked === null ? "" : String(picked));
    setData(track, "span", String(span));
    const named = sorted.filter((s) => s[4]).length;
    const count = `${sorted.length} snapshots${named ? `, ${named} named` : ""}`;
    setText(label, !chosen ? "No snapshots yet"
      : picked === null ? `${count} · click a mark (or use ←/→) to pick one · latest: ${snapTitle(chosen)}`
        : `Picked: ${snapTitle(chosen)} · ${count}`);
    if (k === key || !width) return;
    key = k;
    if (!colors) colors = readColors();
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(HEIGHT * dpr);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${HEIGHT}px`;
    }
    const ctx = canvas.getContext("2d", { willReadFrequently: true }); // in memory, not a GPU layer
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    ctx.lineCap = "round";
    ctx.globalAlpha = 0.5;
    ctx.strokeStyle = colors.muted;
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(PAD, BASE + 0.5); ctx.lineTo(width - PAD, BASE + 0.5); ctx.stroke();
    // automatic snapshots: small and faint when packed, plainer when few; one path
    const room = (width - 2 * PAD) / Math.max(1, sorted.length); // px per mark
    const tick = room < 4 ? 4 : room < 12 ? 5 : 7;
    ctx.globalAlpha = room < 4 ? 0.35 : room < 12 ? 0.55 : 0.85;
    ctx.lineWidth = room < 12 ? 1 : 1.5;
    ctx.beginPath();
    for (const s of sorted) if (!s[4]) { const x = Math.round(px(s[5])) + 0.5; ctx.moveTo(x, BASE - tick); ctx.lineTo(x, BASE + 4); }
    ctx.stroke();
    ctx.globalAlpha = 1;
    if (now !== null) { // where the run is now
      const x = Math.round(px(now)) + 0.5;
      ctx.fillStyle = colors.fg;
      ctx.beginPath(); ctx.moveTo(x - 4, BASE + 12); ctx.lineTo(x + 4, BASE + 12); ctx.lineTo(x, BASE + 6); ctx.fill();
    }
    ctx.strokeStyle = colors.accent; // labelled and manual ones: tall, named (the latest first)
    ctx.fillStyle = colors.accent;
    ctx.lineWidth = 2;
    ctx.font = `10px ${colors.font}`;
    ctx.textBaseline = "alphabetic";
    let free = Infinity; // the left edge of the last label drawn
    for (let j = sorted.length - 1; j >= 0; j--) {
      const s = sorted[j];
      if (!s[4]) continue;
      const x = Math.round(px(s[5]));
      ctx.beginPath(); ctx.moveTo(x, BASE - 11); ctx.lineTo(x, BASE + 4); ctx.stroke();
      const text = s[4].length > 18 ? `${s[4].slice(0, 17)}…` : s[4];
      const w = ctx.measureText(text).width;
      const left = Math.min(Math.max(0, x - w / 2), width - w);
      if (left + w + 6 <= free) { ctx.fillText(text, left, BASE - 14); free = left; }
    }
    if (chosen && picked !== null) { // the picked one: a dot on the track
      ctx.lineWidth = 2;
      ctx.strokeStyle = colors.fg;
      ctx.fillStyle = colors.accent;
      ctx.beginPath(); ctx.arc(px(chosen[5]), BASE, 5, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
  }

  return {
    /** @param {Array<*>} marks  the store's timeline marks @param {number | null} at the run's x
     * @param {boolean} rethemed @param {number} v  the marks' version
     * @param {boolean} running  whether the run trains (the track is drawn every RUNNING_MS) */
    update(marks, at, rethemed, v, running = false) {
      if (rethemed) { colors = null; key = ""; }
      else if (running && performance.now() - lastDraw < pace.every(RUNNING_MS)) return; // the next update draws
      lastDraw = performance.now();
      if (v !== version || marks !== placedFrom) { sorted = placed(marks); placedFrom = marks; }
      version = v;
      if (picked !== null && !sorted.some((s) => s[0] === picked)) { picked = null; onPick(null); }
      now = at;
      const last = sorted.length ? sorted[sorted.length - 1][5] : 0;
      span = Math.max(1, last, now ?? 0);
      draw();
    },
    /** Forget the pick (a new view of the run, a rewind). */
    unpick() { if (picked !== null) { picked = null; onPick(null); draw(); } },
    get picked() { return picked; },
    cleanup() { resize.disconnect(); },
  };
}
