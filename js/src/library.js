// The plotly.js library widget: created once per kernel (Python: PlotlyLibrary) and
// referenced by every plot-bearing widget, so the ~1.2 MB of plotly.js crosses the wire and
// is evaluated once per page instead of once per dashboard.
import Plotly from "plotly.js-basic-dist-min";
import { plotlySlot } from "./plotly_slot.js";

export default {
  initialize() {
    const slot = plotlySlot();
    if (!slot.value) {
      slot.value = Plotly;
      slot.resolve(Plotly);
    }
    // An object returned by initialize is what `host.getWidget(ref).exports` gives to others.
    return { Plotly };
  },
};
