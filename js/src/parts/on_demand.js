// The shared half of a panel the kernel computes only while it is open (Layers, Batch, Layers
// over time; the kernel side is OnDemandPart in luzwidget/widgets/inspector.py): a <details> whose opening
// or closing by the person sends {cmd: "panel", name, open}, and which follows the kernel's
// part: a new view opens or closes as the kernel has it, a closed panel says so. An open
// panel scrolled out of view is not drawn: its latest part is drawn when it comes back.
// While the run trains, a panel is drawn at most every PANEL_MS, stretched by the page's
// drawing budget (pace.js), and one panel per update: the part that came meanwhile waits for
// a later update (panels due together drawn in one frame made it a long task: ~420 objects
// laid out, a compositing update and a repaint).
import { h, setText } from "../dom.js";
import { pageClock } from "../pace.js";

const PANEL_MS = 500;
const SAME_UPDATE_MS = 50; // a panel drawn this recently: this update already drew one
let panelDrawnAt = -Infinity; // when a panel was last drawn while training (any panel, page-wide)

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {"layers" | "batch" | "history"} name  The panel, and its part in the store's state.
 * @param {string} title
 * @param {string} cls  The <details>' own class.
 * @param {HTMLElement} body
 * @returns {{el: HTMLDetailsElement, hint: HTMLElement, part: (state: *, changed: Set<string>) => *,
 *   whenShown: (draw: (part: *) => void) => void, cleanup: () => void}}
 */
export function onDemandPanel(root, store, name, title, cls, body) {
  const hint = h("span", { class: "lw-hint" });
  const el = h("details", { class: `${cls} lw-panel` }, h("summary", { class: "lw-panel-title" }, title, hint), body);
  root.append(el);
  let fromKernel = false; // toggles made by part() are not the person's
  el.addEventListener("toggle", () => {
    if (fromKernel) { fromKernel = false; return; }
    store.command({ cmd: "panel", name, open: el.open });
  });
  let visible = true;
  let deferred = null; // the part not drawn while out of view, or not yet (paced)
  let drawnAt = -Infinity;
  const pace = pageClock();
  let redraw = null;
  const seen = new IntersectionObserver((entries) => {
    visible = entries[entries.length - 1].isIntersecting;
    if (visible && deferred && redraw) { const part = deferred; deferred = null; redraw(part); }
  });
  seen.observe(el);
  return {
    el,
    hint,
    /** `draw(part)` draws a part kept while the panel was out of view, when it is back. */
    whenShown(draw) { redraw = draw; },
    cleanup() { seen.disconnect(); },
    /** The open panel's part to draw after this update, or null. */
    part(state, changed) {
      const part = state[name];
      const waiting = deferred === part && visible; // paced: kept for a later update
      if (!part || !(changed.has(name) || changed.has("snapshot") || waiting)) return null;
      if (changed.has("snapshot") && el.open !== !!part.open) { // a new view: as the kernel has it
        fromKernel = true;
        el.open = !!part.open;
      }
      if (!part.open) { setText(hint, el.open ? "" : "closed: nothing computed"); return null; }
      if (!visible && redraw && !changed.has("snapshot")) { deferred = part; return null; }
      const running = state.status && state.status.state === "running";
      const now = performance.now();
      const paced = running && !changed.has("snapshot");
      if (paced && (now - drawnAt < pace.every(PANEL_MS) || now - panelDrawnAt < SAME_UPDATE_MS)) { deferred = part; return null; }
      deferred = null;
      drawnAt = now;
      if (paced) panelDrawnAt = now;
      return part;
    },
  };
}
