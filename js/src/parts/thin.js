// What the loss stream draws: at most about one point per pixel of the plot. The store keeps
// up to the kernel's 2,000 points a series; plotly's cost per redraw grows with the points it
// is given (calc, path, garbage), and more points than pixels show nothing more.

/**
 * The raw per-batch line thinned to at most ~`budget` points: each of `budget / 2` buckets
 * of consecutive points keeps its lowest and its highest value (in x order), so a spike
 * stays as high as it was, and the last point (the latest batch). Nulls (non-finite losses)
 * are skipped; a bucket of nulls only keeps one (a gap). Returned as is when short enough.
 * @param {number[]} x @param {Array<number | null>} y @param {number} budget
 * @returns {{x: number[], y: Array<number | null>}}
 */
export function minMax(x, y, budget) {
  const n = x.length;
  const buckets = Math.max(1, Math.floor(budget / 2));
  if (n <= 2 * buckets) return { x: x.slice(), y: y.slice() };
  const ox = [], oy = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor(b * size), to = Math.floor((b + 1) * size);
    let lo = -1, hi = -1;
    for (let i = from; i < to; i++) {
      const v = y[i];
      if (v === null || v === undefined) continue;
      if (lo < 0 || v < y[lo]) lo = i;
      if (hi < 0 || v > y[hi]) hi = i;
    }
    if (lo < 0) { ox.push(x[from]); oy.push(null); continue; }
    const [a, c] = lo <= hi ? [lo, hi] : [hi, lo];
    ox.push(x[a]); oy.push(y[a]);
    if (c !== a) { ox.push(x[c]); oy.push(y[c]); }
  }
  if (ox[ox.length - 1] !== x[n - 1]) { ox.push(x[n - 1]); oy.push(y[n - 1]); } // the line ends at the latest batch
  return { x: ox, y: oy };
}

/**
 * A smooth line (the EMA) thinned to at most `budget` points: the last point of each of
 * `budget - 1` buckets, and the first point. Returned as is when already short enough.
 * @param {number[]} x @param {Array<number | null>} y @param {number} budget
 * @returns {{x: number[], y: Array<number | null>}}
 */
export function bucketEnds(x, y, budget) {
  const n = x.length;
  const buckets = Math.max(1, Math.floor(budget) - 1);
  if (n <= buckets + 1) return { x: x.slice(), y: y.slice() };
  const ox = [x[0]], oy = [y[0]];
  const size = (n - 1) / buckets;
  for (let b = 1; b <= buckets; b++) {
    const i = Math.min(n - 1, Math.round(b * size));
    ox.push(x[i]); oy.push(y[i]);
  }
  return { x: ox, y: oy };
}
