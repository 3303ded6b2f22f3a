// Time travel: Snapshot / Rewind / Branch (with an lr box), the timeline of the run's
// snapshots (timeline.js: one track, a mark each; a click or the arrow keys pick one) and
// the family strip (the run, its branches: click one to drive it).
// The kernel side is luzwidget/widgets/travel.py; the curves of the other runs and the
// snapshot markers on the plots are drawn by overlay.js.
import { h, setProp, setText, uid } from "../dom.js";
import { familyColor } from "./overlay.js";
import { mountTimeline } from "./timeline.js";

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {(ack: import("../protocol.js").Ack) => void} say
 * @param {() => void} [picked]  The pick changed (the plots mark the picked snapshot).
 * @returns {import("../protocol.js").Part}
 */
export function mountTravel(root, store, say, picked = () => {}) {
  let latest = null; // the latest snapshot's number
  const lrId = uid("travel-lr");
  const lr = h("input", {
    class: "lw-input lw-travel-lr", id: lrId, type: "text", size: 7, placeholder: "same lr",
    title: "The branch's learning rate (empty: the run's)", "aria-label": "Learning rate of the branch",
    style: "width:7em;flex:none",
  });
  const send = (action, extra = {}) => { // rewind, unpicked: the kernel takes the last before now
    const pick = line.picked; // the snapshot number picked in the timeline (null: the latest)
    const chosen = pick === null && action === "branch" ? latest : pick;
    const snap = chosen === null ? {} : { snapshot: chosen };
    store.command({ cmd: "travel", action, ...snap, ...extra }, say);
  };
  const btn = (text, cls, title, onClick) => h("button", { class: `lw-btn ${cls}`, type: "button", text, title, onClick });
  const snapBtn = btn("Snapshot", "lw-btn-snapshot", "Take a snapshot now (at the next event while training)", () => send("snapshot"));
  const rewindBtn = btn("Rewind", "lw-btn-rewind", "Go back to the picked snapshot (default the last one before now)", () => send("rewind"));
  const branchBtn = btn("Branch", "lw-btn-branch", "A new run from the picked snapshot, with this lr; the controls then drive it", () => {
    send("branch", { lr: lr.value.trim() });
    line.unpick();
  });
  const timeline = h("div", { class: "lw-travel-timeline" });
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

  let familyKey = "";
  const line = mountTimeline(timeline, (number) => {
    store.state.pick = number; // overlay.js marks it on the plots
    picked();
  });

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
          onClick: () => { if (!m.this) { line.unpick(); store.command({ cmd: "travel", action: "drive", run: m.name }, say); } },
        },
        h("span", { "aria-hidden": "true", text: "●", style: `color:${m.this ? "var(--lw-train)" : familyColor(i)};margin-right:3px` }),
        m.name === "main" ? "main" : `${m.name}: ${m.label}`,
      )),
    );
  }

  /** @param {import("../protocol.js").State} state @param {Set<string>} changed */
  function update(state, changed) {
    if (changed.has("snapshot")) line.unpick();
    const travel = state.travel || { family: [] };
    const marks = state.timeline.marks;
    latest = marks.length ? marks[marks.length - 1][0] : null;
    const running = (state.status || {}).state === "running";
    line.update(marks, streamEnd(state), changed.has("theme"), state.timeline.v, running && !changed.has("snapshot"));
    drawFamily(travel.family || []);
    setProp(snapBtn, "disabled", !state.ready);
    setProp(rewindBtn, "disabled", running || !marks.length);
    setProp(branchBtn, "disabled", !marks.length); // also while training: from the chosen snapshot
  }

  return { update, cleanup: () => line.cleanup() };
}

/** The loss stream's last x: where the run is now (null: no points yet). */
function streamEnd(state) {
  let end = null;
  for (const s of Object.values(state.stream.series)) {
    if (s.x.length) end = Math.max(end ?? -Infinity, s.x[s.x.length - 1]);
  }
  return end;
}
