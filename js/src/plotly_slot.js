// One promise per page that resolves to plotly.js once the library widget has loaded it.
// The library model (Python: PlotlyLibrary, one per kernel) resolves it; plots await it.
const KEY = Symbol.for("luzwidget.plotly");

/** The page-wide slot: { promise, resolve }. */
export function plotlySlot() {
  let slot = globalThis[KEY];
  if (!slot) {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    slot = { promise, resolve, value: null };
    globalThis[KEY] = slot;
  }
  return slot;
}

/**
 * plotly.js for a widget whose model references the library model in trait `_lib`.
 * anywidget >= 0.10 hands `host.getWidget(ref)`, which waits for the library's initialize;
 * older front ends fall back to the page-wide slot.
 */
export async function getPlotly(model, host) {
  const slot = plotlySlot();
  if (slot.value) return slot.value;
  // The trait is serialized by ipywidgets as "IPY_MODEL_<id>"; anywidget's host wants
  // "anywidget:<id>".
  const ref = String(model.get("_lib") || "").replace(/^(IPY_MODEL_|anywidget:)/, "");
  if (host && typeof host.getWidget === "function" && ref) {
    try {
      const widget = await host.getWidget(`anywidget:${ref}`);
      if (widget && widget.exports && widget.exports.Plotly) return widget.exports.Plotly;
    } catch (error) {
      console.warn("[luzwidget] could not reach the plotly library widget; waiting for it", error);
    }
  }
  return slot.promise;
}
