// The page's drawing budget while a run trains. Every part that draws on a clock (the calm
// flush of dashboard.js, the plots' rounds, Layers over time, the timeline) charges what its
// drawing cost: its own script time and the frame that follows it (style, layout, paint and
// the page-wide compositing update, which in JupyterLab costs more than most redraws). When
// the page's drawing takes more than BUDGET of the main thread, every clock is stretched by
// the same factor; when it takes less, they come back to their own pace. So opening more
// panels, or a slower machine, makes the dashboard redraw less often, never the page heavy.
// A click's answer is not paced (dashboard.js draws it at once).

const BUDGET = 0.05; // share of the main thread the dashboard's drawing may take
const WINDOW_MS = 3000; // what was spent over this long is the rate
const ADJUST_MS = 500; // the stretch changes at most this often
const STRETCH_MAX = 5;

/**
 * @typedef {object} Pace
 * @property {(t0: number, inFrame?: boolean) => void} spent  Charge the script time since `t0`
 *   (performance.now()) and the rendering of the frame that shows it: the next one, or this
 *   one when called from an animation frame's callback (`inFrame`).
 * @property {(ms: number) => number} every  `ms` stretched as the budget asks (at least `ms`).
 * @property {() => number} stretch  The factor now (1: the clocks' own pace).
 */

/**
 * @param {{now?: () => number, frame?: (measure: () => void) => void, budget?: number}} [options]
 *   The clock, how to reach the next animation frame, and the budget (tests set them).
 * @returns {Pace}
 */
export function createPace({ now: clock = () => performance.now(), frame = (fn) => requestAnimationFrame(fn), budget = BUDGET } = {}) {
  /** @type {Array<[number, number]>} (when, ms) */
  const costs = [];
  let stretch = 1;
  let adjusted = -Infinity;
  let armed = false;
  let channel = null; // made at the first frame measured
  let frameStart = 0;

  function charge(ms) {
    costs.push([clock(), ms]);
  }

  function measureFrame(inFrame) {
    if (armed) return;
    armed = true;
    const measure = () => {
      armed = false;
      if (!channel) {
        channel = new MessageChannel();
        // After a frame's callbacks the browser styles, lays out, paints and composites in
        // the same task; a message posted from a callback runs after all that: the gap is
        // the frame's cost.
        channel.port1.onmessage = () => { charge(clock() - frameStart); };
      }
      frameStart = clock();
      channel.port2.postMessage(0);
    };
    if (inFrame) measure();
    else frame(measure);
  }

  function adjust() {
    const now = clock();
    if (now - adjusted < ADJUST_MS) return;
    adjusted = now;
    while (costs.length && costs[0][0] < now - WINDOW_MS) costs.shift();
    let total = 0;
    for (const [, ms] of costs) total += ms;
    const rate = total / WINDOW_MS;
    // The rate was measured at the current stretch: the stretch that meets the budget is the
    // current one scaled by rate / budget (damped: the square root).
    stretch = Math.min(STRETCH_MAX, Math.max(1, stretch * Math.sqrt(rate / budget)));
  }

  return {
    spent(t0, inFrame = false) {
      charge(clock() - t0);
      measureFrame(inFrame);
    },
    every(ms) {
      adjust();
      return ms * stretch;
    },
    stretch() {
      adjust();
      return stretch;
    },
  };
}

/** The page's pace, shared by every dashboard view on the page (their costs add up). */
export function pageClock() {
  return (globalThis[Symbol.for("luzwidget.pace")] ??= createPace());
}
