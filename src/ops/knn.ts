/**
 * Exact k-nearest neighbours, euclidean, on a dense row-major n × d float32 matrix (the PCs).
 *
 * Matches what scanpy computes for n_obs < 8,192 (sklearn brute force, self included as the first
 * neighbour): `knn_indices` / `knn_distances` of `sc.pp.neighbors`. Seurat's annoy lists are
 * approximate; this is the exact answer they approximate.
 *
 * Algorithm: every unordered pair once (d(i,j) = d(j,i) bit for bit), in column tiles so a tile of
 * reference rows stays in cache while all queries stream past it; squared distances by the direct
 * form Σ(x−y)² accumulated in float64 (no cancellation, so duplicates are exactly 0 apart and ties
 * are real ties); a per-query sorted buffer of the best k−1 others, ordered by (distance, index).
 *
 * Deliberate differences from sklearn: row i's first neighbour is always i itself with distance
 * exactly 0, even when a duplicate of i has a smaller index. sklearn's GEMM form
 * (‖x‖² + ‖y‖² − 2x·y) leaves rounding noise (~1e-7) in the self-distance of many cells; umap's
 * smooth_knn_dist then takes that noise as rho (the distance to the first non-zero neighbour), so
 * scanpy's connectivities for those cells differ from what exact distances give. We keep the
 * exact zero rather than imitate noise that cannot be reproduced cell for cell.
 */

export interface Knn {
  n: number;
  k: number;
  /** n × k row-major; column 0 is the point itself. */
  indices: Int32Array;
  /** n × k row-major euclidean distances (not squared), non-decreasing along each row. */
  distances: Float32Array;
}

/** Reference rows per tile: 128 × 50 float64 = 50 KB, within L2 on anything current. */
const TILE = 128;

export function knnExactCpu(points: Float32Array, n: number, d: number, k: number): Knn {
  if (!Number.isInteger(n) || !Number.isInteger(d) || !Number.isInteger(k) || n < 1 || d < 1) {
    throw new RangeError(`knnExactCpu: n, d must be positive integers (got n=${n}, d=${d}, k=${k})`);
  }
  if (k < 1 || k > n) throw new RangeError(`knnExactCpu: need 1 <= k <= n (got k=${k}, n=${n})`);
  if (points.length !== n * d) {
    throw new RangeError(`knnExactCpu: points has ${points.length} values, expected n*d = ${n * d}`);
  }
  const x = Float64Array.from(points);
  const m = k - 1; // neighbours besides self
  // Per query: the best m others so far, sorted ascending by (squared distance, index).
  const bestD = new Float64Array(n * m).fill(Infinity);
  const bestI = new Int32Array(n * m).fill(0x7fffffff);

  for (let j0 = 0; j0 < n && m > 0; j0 += TILE) {
    const j1 = Math.min(n, j0 + TILE);
    for (let i = 0; i < j1 - 1; i++) {
      const io = i * d;
      for (let j = Math.max(j0, i + 1); j < j1; j++) {
        const jo = j * d;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let t = 0;
        // Four independent accumulators, then a fixed combine: deterministic, and symmetric in i, j.
        for (; t + 3 < d; t += 4) {
          const a = x[io + t] - x[jo + t];
          const b = x[io + t + 1] - x[jo + t + 1];
          const c = x[io + t + 2] - x[jo + t + 2];
          const e = x[io + t + 3] - x[jo + t + 3];
          s0 += a * a;
          s1 += b * b;
          s2 += c * c;
          s3 += e * e;
        }
        for (; t < d; t++) {
          const a = x[io + t] - x[jo + t];
          s0 += a * a;
        }
        const s = s0 + s1 + (s2 + s3);
        offer(bestD, bestI, i * m, m, s, j);
        offer(bestD, bestI, j * m, m, s, i);
      }
    }
  }

  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    indices[i * k] = i;
    distances[i * k] = 0;
    for (let r = 0; r < m; r++) {
      indices[i * k + 1 + r] = bestI[i * m + r];
      distances[i * k + 1 + r] = Math.sqrt(bestD[i * m + r]);
    }
  }
  return { n, k, indices, distances };
}

/** Insert (s, j) into the sorted buffer at [o, o+m) if it beats the current worst. */
function offer(bestD: Float64Array, bestI: Int32Array, o: number, m: number, s: number, j: number): void {
  const last = o + m - 1;
  const wd = bestD[last];
  if (s > wd || (s === wd && j > bestI[last])) return;
  let p = last;
  while (p > o) {
    const pd = bestD[p - 1];
    if (pd < s || (pd === s && bestI[p - 1] < j)) break;
    bestD[p] = pd;
    bestI[p] = bestI[p - 1];
    p--;
  }
  bestD[p] = s;
  bestI[p] = j;
}
