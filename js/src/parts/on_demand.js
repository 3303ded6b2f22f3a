// The shared half of a panel the kernel computes only while it is open (Layers, Batch, Layers
// over time; the kernel side is OnDemandPart in luzwidget/widgets/inspector.py): a <details> whose opening
// or closing by the person sends {cmd: "panel", name, open}, and which follows the kernel's
// part: a new view opens or closes as the kernel has it, a closed panel says so.
import { h, setText } from "../dom.js";

/**
 * @param {HTMLElement} root
 * @param {import("../protocol.js").Store} store
 * @param {"layers" | "batch" | "history"} name  The panel, and its part in the store's state.
 * @param {string} title
 * @param {string} cls  The <details>' own class.
 * @param {HTMLElement} body
 * @returns {{el: HTMLDetailsElement, hint: HTMLElement, part: (state: *, changed: Set<string>) => *}}
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
  return {
    el,
    hint,
    /** The open panel's part to draw after this update, or null. */
    part(state, changed) {
      const part = state[name];
      if (!part || !(changed.has(name) || changed.has("snapshot"))) return null;
      if (changed.has("snapshot") && el.open !== !!part.open) { // a new view: as the kernel has it
        fromKernel = true;
        el.open = !!part.open;
      }
      if (!part.open) { setText(hint, el.open ? "" : "closed: nothing computed"); return null; }
      return part;
    },
  };
}
