// Time travel: Snapshot / Rewind / Branch (with an lr box), a timeline of the run's snapshots
// (click one to pick it) and the family strip (the run, its branches: click one to drive it).
// The kernel side is luzwidget/widgets/travel.py; the curves of the other runs and the
// snapshot markers on the plots are drawn by overlay.js.
import { h, setProp, setText, uid } from "../dom.js";
import { familyColor } from "./overlay.js";

const KIND_TEXT = { s: "start", e: "end of epoch", i: "inside epoch" };

/** @param {Array<*>} s  [number, epoch, batch, kind, label, x] */
function chipText(s) {
  const [, epoch, iter, kind, label] = s;
  const where = kind === "s" ? "start" : iter ? `e${epoch + 1}·b${iter}` : `e${epoch}`;
  return label ? `${where} ${label}` : where;
}

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {(ack: import("../protocol.js").Ack) => void} say
 * @returns {import("../protocol.js").Part}
 */
export function mountTravel(root, store, say) {
  let picked = null; // the snapshot number picked in the timeline (null: the latest)
  let latest = null; // the latest snapshot's number
  const lrId = uid("travel-lr");
  const lr = h("input", {
    class: "lw-input lw-travel-lr", id: lrId, type: "text", size: 7, placeholder: "same lr",
    title: "The branch's learning rate (empty: the run's)", "aria-label": "Learning rate of the branch",
    style: "width:7em;flex:none",
  });
  const send = (action, extra = {}) => { // rewind, unpicked: the kernel takes the last before now
    const chosen = picked === null && action === "branch" ? latest : picked;
    const snap = chosen === null ? {} : { snapshot: chosen };
    store.command({ cmd: "travel", action, ...snap, ...extra }, say);
  };
  const btn = (text, cls, title, onClick) => h("button", { class: `lw-btn ${cls}`, type: "button", text, title, onClick });
  const snapBtn = btn("Snapshot", "lw-btn-snapshot", "Take a snapshot now (at the next event while training)", () => send("snapshot"));
  const rewindBtn = btn("Rewind", "lw-btn-rewind", "Go back to the picked snapshot (default the last one before now)", () => send("rewind"));
  const branchBtn = btn("Branch", "lw-btn-branch", "A new run from the picked snapshot, with this lr; the controls then drive it", () => {
    send("branch", { lr: lr.value.trim() });
    picked = null;
  });
  const timeline = h("div", { class: "lw-travel-timeline", role: "listbox", "aria-label": "Snapshots", style: "display:flex;flex-wrap:wrap;gap:4px;align-items:center" });
  const familyBar = h("div", { class: "lw-travel-family", role: "group", "aria-label": "Runs of this family", style: "display:flex;flex-wrap:wrap;gap:4px;align-items:center" });
  const bar = h(
    "div",
    { class: "lw-controls lw-travel", role: "toolbar", "aria-label": "Time travel" },
    h("span", { class: "lw-travel-title", text: "Time travel", style: "font-weight:600;margin-right:4px" }),
    snapBtn, rewindBtn,
    h("label", { for: lrId, text: "lr", style: "margin-left:4px" }), lr, branchBtn,
  );
  const el = h("div", { class: "lw-travel-part", style: "display:flex;flex-direction:column;gap:4px;margin:4px 0" }, bar, timeline, familyBar);
  root.append(el);

  let timelineKey = "";
  let familyKey = "";
  let shown = []; // the snapshots the timeline shows
  const chips = new Map(); // snapshot number -> { el, key }: kept across updates
  const timelineLabel = h("span", { class: "lw-travel-label", style: "opacity:.7" });
  timeline.append(timelineLabel);

  function chip(s) {
    return h("button", {
      class: "lw-btn lw-travel-snap", type: "button", role: "option", text: chipText(s),
      "data-index": s[0], title: `${KIND_TEXT[s[3]] || ""} ${s[1]}${s[4] ? ` (${s[4]})` : ""}`,
      style: "padding:1px 6px;font-size:11px",
      onClick: () => { picked = s[0] === latest ? null : s[0]; drawTimeline(shown); },
    });
  }

  /** Chips updated in place: an epoch's new snapshot adds one and drops the oldest. */
  function drawTimeline(snaps) {
    const key = JSON.stringify([snaps, picked]);
    if (key === timelineKey) return;
    timelineKey = key;
    shown = snaps;
    setText(timelineLabel, snaps.length ? "Snapshots:" : "No snapshots yet");
    const numbers = new Set(snaps.map((s) => s[0]));
    for (const [n, c] of chips) if (!numbers.has(n)) { c.el.remove(); chips.delete(n); }
    const chosen = picked === null ? latest : picked;
    let before = timelineLabel;
    for (const s of snaps) {
      const sKey = JSON.stringify(s);
      let c = chips.get(s[0]);
      if (!c || c.key !== sKey) {
        const el = chip(s);
        if (c) c.el.replaceWith(el);
        chips.set(s[0], (c = { el, key: sKey, on: null }));
      }
      if (before.nextSibling !== c.el) before.after(c.el);
      before = c.el;
      const on = s[0] === chosen;
      if (c.on !== on) {
        c.on = on;
        c.el.setAttribute("aria-selected", String(on));
        c.el.style.borderColor = on ? "var(--lw-accent)" : "";
        c.el.style.fontWeight = on ? "600" : "";
      }
    }
  }

  function drawFamily(members) {
    const key = JSON.stringify(members.map((m) => [m.name, m.label, m.this, m.state, m.epoch]));
    if (key === familyKey) return;
    familyKey = key;
    if (members.length < 2) { familyBar.replaceChildren(); return; }
    familyBar.replaceChildren(
      h("span", { class: "lw-travel-label", text: "Drive:", style: "opacity:.7" }),
      ...members.map((m, i) => h(
        "button",
        {
          class: "lw-btn lw-travel-run", type: "button", "data-run": m.name, "aria-pressed": String(m.this),
          title: `${m.name}: ${m.label} (${m.state}, epoch ${m.epoch})${m.this ? ", driven now" : ", click to drive it"}`,
          style: `padding:1px 6px;font-size:11px;${m.this ? "border-color:var(--lw-accent);font-weight:600" : ""}`,
          onClick: () => { if (!m.this) { picked = null; store.command({ cmd: "travel", action: "drive", run: m.name }, say); } },
        },
        h("span", { "aria-hidden": "true", text: "●", style: `color:${m.this ? "var(--lw-train)" : familyColor(i)};margin-right:3px` }),
        m.name === "main" ? "main" : `${m.name}: ${m.label}`,
      )),
    );
  }

  /** @param {import("../protocol.js").State} state */
  function update(state, changed) {
    if (changed.has("snapshot")) {
      picked = null;
      timelineKey = "";
      for (const c of chips.values()) c.el.remove();
      chips.clear();
    }
    const travel = state.travel || { snapshots: [], family: [] };
    const snaps = travel.snapshots || [];
    if (picked !== null && !snaps.some((s) => s[0] === picked)) picked = null;
    latest = snaps.length ? snaps[snaps.length - 1][0] : null;
    drawTimeline(snaps);
    drawFamily(travel.family || []);
    const running = (state.status || {}).state === "running";
    setProp(snapBtn, "disabled", !state.ready);
    setProp(rewindBtn, "disabled", running || !snaps.length);
    setProp(branchBtn, "disabled", !snaps.length); // also while training: from the chosen snapshot
  }

  return { update };
}
