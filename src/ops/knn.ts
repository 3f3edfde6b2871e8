/**
 * Exact k-nearest neighbours, euclidean, on a dense row-major n × d float32 matrix (the PCs).
 *
 * Matches what scanpy computes for n_obs < 8,192 (sklearn brute force, self included as the first
 * neighbour): `knn_indices` / `knn_distances` of `sc.pp.neighbors`. Seurat's annoy lists are
 * approximate; this is the exact answer they approximate.
 *
 * Algorithm: every unordered pair once (d(i,j) = d(j,i) bit for bit), in column tiles so a tile of
 * reference rows stays in cache while all queries stream past it, rows taken two by two (a 2 × 2
 * register block: ~1.8× faster than one pair at a time in V8); squared distances by the direct
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

import { Rng } from "../core/random.js";
import type { Gpu } from "../gpu/device.js";

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

  if (m > 0) {
    // Rows in pairs: a 2 × 2 block of (query, reference) rows reuses each load twice.
    const nEven = n - (n & 1);
    for (let j0 = 0; j0 < nEven; j0 += TILE) {
      const j1 = Math.min(nEven, j0 + TILE);
      for (let i = 0; i < j1; i += 2) {
        if (i >= j0) {
          const s = dist2(x, i * d, (i + 1) * d, d);
          offer(bestD, bestI, i * m, m, s, i + 1);
          offer(bestD, bestI, (i + 1) * m, m, s, i);
        }
        for (let j = Math.max(j0, i + 2); j < j1; j += 2) block2x2(x, d, i, j, bestD, bestI, m);
      }
    }
    if (n & 1) {
      const last = n - 1;
      for (let j = 0; j < last; j++) {
        const s = dist2(x, last * d, j * d, d);
        offer(bestD, bestI, last * m, m, s, j);
        offer(bestD, bestI, j * m, m, s, last);
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

/**
 * Squared distance Σ(x_i − x_j)², float64, two accumulators (even / odd coordinates) and a
 * trailing odd coordinate added last. block2x2 sums in exactly this order, so a pair's distance
 * does not depend on which path computed it: exact duplicates tie exactly, and the tie goes by index.
 */
function dist2(x: Float64Array, io: number, jo: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let t = 0;
  for (; t + 1 < d; t += 2) {
    const a = x[io + t] - x[jo + t];
    const b = x[io + t + 1] - x[jo + t + 1];
    s0 += a * a;
    s1 += b * b;
  }
  if (t < d) {
    const a = x[io + t] - x[jo + t];
    s0 += a * a;
  }
  return s0 + s1;
}

/** Distances between rows {i, i+1} and {j, j+1}, each offered to both ends. */
function block2x2(x: Float64Array, d: number, i: number, j: number, bestD: Float64Array, bestI: Int32Array, m: number): void {
  const io = i * d;
  const ip = io + d;
  const jo = j * d;
  const jp = jo + d;
  let a0 = 0;
  let a1 = 0;
  let b0 = 0;
  let b1 = 0;
  let c0 = 0;
  let c1 = 0;
  let e0 = 0;
  let e1 = 0;
  let t = 0;
  for (; t + 1 < d; t += 2) {
    const x0 = x[io + t];
    const x1 = x[io + t + 1];
    const y0 = x[ip + t];
    const y1 = x[ip + t + 1];
    const u0 = x[jo + t];
    const u1 = x[jo + t + 1];
    const v0 = x[jp + t];
    const v1 = x[jp + t + 1];
    let q = x0 - u0;
    a0 += q * q;
    q = x1 - u1;
    a1 += q * q;
    q = x0 - v0;
    b0 += q * q;
    q = x1 - v1;
    b1 += q * q;
    q = y0 - u0;
    c0 += q * q;
    q = y1 - u1;
    c1 += q * q;
    q = y0 - v0;
    e0 += q * q;
    q = y1 - v1;
    e1 += q * q;
  }
  if (t < d) {
    let q = x[io + t] - x[jo + t];
    a0 += q * q;
    q = x[io + t] - x[jp + t];
    b0 += q * q;
    q = x[ip + t] - x[jo + t];
    c0 += q * q;
    q = x[ip + t] - x[jp + t];
    e0 += q * q;
  }
  const sa = a0 + a1;
  const sb = b0 + b1;
  const sc = c0 + c1;
  const se = e0 + e1;
  offer(bestD, bestI, i * m, m, sa, j);
  offer(bestD, bestI, i * m, m, sb, j + 1);
  offer(bestD, bestI, (i + 1) * m, m, sc, j);
  offer(bestD, bestI, (i + 1) * m, m, se, j + 1);
  offer(bestD, bestI, j * m, m, sa, i);
  offer(bestD, bestI, (j + 1) * m, m, sb, i);
  offer(bestD, bestI, j * m, m, sc, i + 1);
  offer(bestD, bestI, (j + 1) * m, m, se, i + 1);
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

/** Reference rows per dispatch: bounds one dispatch's run time (lavapipe runs it on the CPU). */
const GPU_REF_BLOCK = 8192;
const GPU_KMAX = 64;
/** 64 invocations × 4 queries each (kernels/knn_topk.wgsl). */
const GPU_QUERIES_PER_WORKGROUP = 256;
/** Coordinates per point the kernel's private query copy holds (kernels/knn_topk.wgsl qv). */
const GPU_DMAX = 256;

/**
 * GPU twin of knnExactCpu (kernels/knn_topk.wgsl). The rows are cut into chunks that each fit one
 * storage binding (as queries, as references, and as the chunk's m = k − 1 top-list slots);
 * for each query chunk every reference chunk is scanned in blocks of GPU_REF_BLOCK rows, ascending,
 * each dispatch merging into the per-query lists kept on the device. Squared distances are f32
 * (Σ(x−y)² by vec4 fma, fixed order), so the neighbour sets agree with the float64 CPU twin except
 * where two distances are within f32 rounding; ties break by smaller index, self is first with
 * distance exactly 0, other distances are the f32 sqrt of the f32 squared distance.
 * Requires k ≤ 64 and d ≤ 256 (the kernel's private copy of a query row).
 */
export async function knnExactGpu(gpu: Gpu, points: Float32Array, n: number, d: number, k: number): Promise<Knn> {
  if (!Number.isInteger(n) || !Number.isInteger(d) || !Number.isInteger(k) || n < 1 || d < 1) {
    throw new RangeError(`knnExactGpu: n, d must be positive integers (got n=${n}, d=${d}, k=${k})`);
  }
  if (k < 1 || k > n) throw new RangeError(`knnExactGpu: need 1 <= k <= n (got k=${k}, n=${n})`);
  if (k > GPU_KMAX) throw new RangeError(`knnExactGpu: k=${k} exceeds the GPU top-k limit ${GPU_KMAX}`);
  if (points.length !== n * d) {
    throw new RangeError(`knnExactGpu: points has ${points.length} values, expected n*d = ${n * d}`);
  }
  const m = k - 1;
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) indices[i * k] = i;
  if (m === 0) return { n, k, indices, distances };

  const code = (await import("../../kernels/knn_topk.wgsl")).default;
  const pipeline = await gpu.pipeline(code, "knn_block");

  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  // Rows zero-padded to a multiple of 4 coordinates (vec4 loads; the zeros add exactly 0).
  const d4 = Math.ceil(d / 4);
  if (d4 > GPU_DMAX / 4) throw new RangeError(`knnExactGpu: d=${d} exceeds the GPU limit ${GPU_DMAX}`);
  const padded = new Float32Array(n * d4 * 4);
  for (let i = 0; i < n; i++) padded.set(points.subarray(i * d, (i + 1) * d), i * d4 * 4);
  const rowsPerChunk = Math.floor(limit / (4 * Math.max(4 * d4, m)));
  if (rowsPerChunk < 1) throw new Error(`knnExactGpu: one row (d=${d}, k=${k}) does not fit a ${limit}-byte binding`);
  const chunks: { start: number; rows: number; buf: GPUBuffer }[] = [];
  const temp: GPUBuffer[] = [];
  try {
    for (let start = 0; start < n; start += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, n - start);
      const buf = gpu.upload(padded.subarray(start * d4 * 4, (start + rows) * d4 * 4), "knn.points");
      temp.push(buf);
      chunks.push({ start, rows, buf });
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
    for (const qc of chunks) {
      const bestD = gpu.createBuffer(qc.rows * m * 4, usage, "knn.bestD");
      const bestI = gpu.createBuffer(qc.rows * m * 4, usage, "knn.bestI");
      temp.push(bestD, bestI);
      const steps = [];
      let first = 1;
      for (const rc of chunks) {
        for (let r = 0; r < rc.rows; r += GPU_REF_BLOCK) {
          const params = gpu.uniforms({ u32: [qc.rows, qc.start, r, Math.min(rc.rows, r + GPU_REF_BLOCK), rc.start, m, first, d4] });
          temp.push(params);
          first = 0;
          steps.push({ pipeline, bindings: [params, qc.buf, rc.buf, bestD, bestI], workgroups: Math.ceil(qc.rows / GPU_QUERIES_PER_WORKGROUP) });
        }
      }
      await gpu.run("knn_block", steps);
      const [db, ib] = await gpu.readbackAll([
        { buffer: bestD, byteLength: qc.rows * m * 4 },
        { buffer: bestI, byteLength: qc.rows * m * 4 },
      ]);
      const dv = new Float32Array(db);
      const iv = new Uint32Array(ib);
      for (let q = 0; q < qc.rows; q++) {
        const o = (qc.start + q) * k;
        for (let p = 0; p < m; p++) {
          // An unfilled slot means fewer than m finite distances: the input has NaN / huge values.
          if (iv[q * m + p] === 0xffffffff) throw new RangeError(`knnExactGpu: row ${qc.start + q} has non-finite distances`);
          indices[o + 1 + p] = iv[q * m + p];
          // sqrt of the f32 squared distance, rounded once to f32.
          distances[o + 1 + p] = Math.sqrt(dv[q * m + p]);
        }
      }
    }
  } finally {
    for (const b of temp) b.destroy();
  }
  return { n, k, indices, distances };
}

/**
 * Approximate k-nearest neighbours by NN-descent (Dong, Charikar & Li 2011) started from a
 * random-projection forest, in the form pynndescent uses (what scanpy calls for n_obs ≥ 8,192),
 * for inputs too large for the exact O(n² d) scan. Same output contract as knnExactCpu: self first
 * at distance exactly 0, the other k − 1 sorted by (distance, index), euclidean distances from
 * float64 sums over the float32 points.
 *
 * Algorithm: (1) RP forest: each tree splits a node by the hyperplane halfway between two of its
 * points drawn at random until at most LEAF_SIZE points remain; every pair inside a leaf is offered
 * to both lists. Points with unfilled lists get random others. (2) NN-descent: per point up to
 * `cap` "new" and "old" candidates — its neighbours plus its reverse neighbours, those over the cap
 * dropped by a hashed random priority (pynndescent's sampling) — joined new×new and new×old, each
 * pair offered to both lists. Stops when fewer than delta·n·k list entries changed, or after
 * maxIterations (default max(5, log2 n)).
 * Speed: all work runs on a copy of the points reordered by the first tree's leaves, so a point's
 * neighbours mostly sit near it in memory; a pair's squared distance is abandoned (every 8
 * coordinates) once it exceeds both lists' current worst, which with PCA-ordered coordinates
 * (variance front-loaded) usually happens early. The abandon never changes a result: a distance
 * that is completed is summed in the same order either way.
 * Differences from pynndescent: the search keeps m + EXTRA entries per list and returns the best m
 * (recall at 200,000 points 0.835 → 0.917, for ~1.7× the work); candidate cap max(k, 20) rather
 * than min(60, k); a serial join in a fixed order (a given seed always gives the same bytes); ties
 * in the lists broken by index. Single-threaded.
 */
export function knnApproxCpu(
  points: Float32Array,
  n: number,
  d: number,
  k: number,
  opts: { seed?: number; maxIterations?: number; delta?: number } = {},
): Knn {
  if (!Number.isInteger(n) || !Number.isInteger(d) || !Number.isInteger(k) || n < 1 || d < 1) {
    throw new RangeError(`knnApproxCpu: n, d must be positive integers (got n=${n}, d=${d}, k=${k})`);
  }
  if (k < 1 || k > n) throw new RangeError(`knnApproxCpu: need 1 <= k <= n (got k=${k}, n=${n})`);
  if (points.length !== n * d) {
    throw new RangeError(`knnApproxCpu: points has ${points.length} values, expected n*d = ${n * d}`);
  }
  for (let t = 0; t < points.length; t++) {
    if (!Number.isFinite(points[t])) throw new RangeError(`knnApproxCpu: row ${Math.floor(t / d)} has a non-finite value`);
  }
  const seed = opts.seed ?? 0;
  const maxIterations = opts.maxIterations ?? Math.max(5, Math.round(Math.log2(n)));
  const delta = opts.delta ?? 0.001;
  const m = k - 1; // neighbours besides self
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) indices[i * k] = i;
  if (m === 0) return { n, k, indices, distances };

  const rng = new Rng(seed);
  // Work in the first tree's leaf order: perm[p] is the input row at working position p, and that
  // tree's leaves are contiguous ranges of working positions.
  const first = rpTreeLeaves(points, n, d, rng);
  const perm = first.order;
  const x = new Float32Array(n * d);
  for (let p = 0; p < n; p++) x.set(points.subarray(perm[p] * d, perm[p] * d + d), p * d);
  // Lists keep EXTRA more than asked: NN-descent converges much closer to the true top m when the
  // lists it joins reach further (200,000 × 50 PCA-like points: recall 0.835 with m = 14, 0.917 with 24).
  const L = Math.min(n - 1, m + EXTRA);
  const heap = new NeighbourHeaps(n, L);
  const identity = new Int32Array(n);
  for (let p = 0; p < n; p++) identity[p] = p;
  heap.offerLeaves(x, d, identity, first.leaves);
  const nTrees = n < 10_000 ? 4 : n < 200_000 ? 6 : 8;
  for (let tree = 1; tree < nTrees; tree++) {
    const { order, leaves } = rpTreeLeaves(x, n, d, rng);
    heap.offerLeaves(x, d, order, leaves);
  }
  for (let p = 0; p < n; p++) {
    // A list the leaves left short (n ≤ m, or a small leaf) is topped up with random others.
    while (heap.dist[p * L] === Infinity) {
      const q = rng.nextU32() % n;
      if (q !== p) heap.push(p, dist2f(x, p * d, q * d, d, Infinity), q);
    }
  }

  const cap = Math.max(k, 20);
  const fresh = new CandidateHeaps(n, cap);
  const old = new CandidateHeaps(n, cap);
  for (let iter = 0; iter < maxIterations; iter++) {
    fresh.clear();
    old.clear();
    const salt = rng.nextU32();
    for (let p = 0; p < n; p++) {
      for (let r = 0; r < L; r++) {
        const e = p * L + r;
        const q = heap.idx[e];
        const pri = fmix32((e ^ salt) >>> 0) >>> 1;
        const target = heap.isNew[e] ? fresh : old;
        target.push(p, pri, q);
        target.push(q, pri, p);
      }
    }
    // Neighbours that made it into the sample are joined now; later rounds treat them as old.
    for (let p = 0; p < n; p++) {
      for (let r = 0; r < L; r++) {
        const e = p * L + r;
        if (heap.isNew[e] && fresh.has(p, heap.idx[e])) heap.isNew[e] = 0;
      }
    }

    let updates = 0;
    for (let i = 0; i < n; i++) {
      const base = i * cap; // both candidate heaps share the layout
      const nc = fresh.count[i];
      const oc = old.count[i];
      for (let a = 0; a < nc; a++) {
        const p = fresh.idx[base + a];
        for (let b = a + 1; b < nc; b++) updates += heap.offerPair(x, d, p, fresh.idx[base + b]);
        for (let b = 0; b < oc; b++) {
          const q = old.idx[base + b];
          if (q !== p) updates += heap.offerPair(x, d, p, q);
        }
      }
    }
    if (updates < delta * n * k) break;
  }

  // Back to input numbering; rows sorted by (squared distance, input index).
  const pos = new Int32Array(n);
  for (let p = 0; p < n; p++) pos[perm[p]] = p;
  const order = new Int32Array(L);
  const rowI = new Int32Array(L);
  for (let i = 0; i < n; i++) {
    const base = pos[i] * L;
    for (let r = 0; r < L; r++) {
      order[r] = r;
      rowI[r] = perm[heap.idx[base + r]];
    }
    order.sort((a, b) => heap.dist[base + a] - heap.dist[base + b] || rowI[a] - rowI[b]);
    for (let r = 0; r < m; r++) {
      indices[i * k + 1 + r] = rowI[order[r]];
      distances[i * k + 1 + r] = Math.sqrt(heap.dist[base + order[r]]);
    }
  }
  return { n, k, indices, distances };
}

/** Extra list entries kept during the search (see knnApproxCpu). */
const EXTRA = 10;

/** pynndescent's default leaf size for k ≤ 30 would be 30; 48 makes fewer trees reach the same recall. */
const LEAF_SIZE = 48;

/**
 * One random-projection tree over the n rows of x: `order` lists the rows leaf by leaf, `leaves`
 * holds each leaf's [start, end) in `order`, in that order. A node splits by the sign of
 * (x − (a+b)/2)·(a − b) for two of its rows a, b drawn from rng; a point on the plane goes to the
 * side a random bit picks, and a split that leaves one side empty (all projections equal:
 * duplicates) halves the node as it stands.
 */
function rpTreeLeaves(x: Float32Array, n: number, d: number, rng: Rng): { order: Int32Array; leaves: number[] } {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const side = new Uint8Array(n);
  const normal = new Float64Array(d);
  const leaves: number[] = [];
  const stack: number[] = [0, n];
  while (stack.length > 0) {
    const hi = stack.pop() as number;
    const lo = stack.pop() as number;
    const size = hi - lo;
    if (size <= LEAF_SIZE) {
      leaves.push(lo, hi);
      continue;
    }
    const a = order[lo + (rng.nextU32() % size)] * d;
    let b = order[lo + (rng.nextU32() % (size - 1))] * d;
    if (b === a) b = order[hi - 1] * d;
    let offset = 0;
    for (let t = 0; t < d; t++) {
      const v = x[a + t] - x[b + t];
      normal[t] = v;
      offset -= (v * (x[a + t] + x[b + t])) / 2;
    }
    let nLeft = 0;
    for (let s = lo; s < hi; s++) {
      const o = order[s] * d;
      let margin = offset;
      for (let t = 0; t < d; t++) margin += normal[t] * x[o + t];
      const left = margin > 0 ? 1 : margin < 0 ? 0 : rng.nextU32() & 1;
      side[s] = left;
      nLeft += left;
    }
    let mid = lo + (size >> 1);
    if (nLeft > 0 && nLeft < size) {
      // Stable partition would cost a buffer; swapping from both ends keeps it in place.
      let i = lo;
      let j = hi - 1;
      for (;;) {
        while (i < j && side[i] === 1) i++;
        while (i < j && side[j] === 0) j--;
        if (i >= j) break;
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
        side[i] = 1;
        side[j] = 0;
      }
      mid = lo + nLeft;
    }
    // Right half pushed first so leaves come out left to right.
    stack.push(mid, hi, lo, mid);
  }
  return { order, leaves };
}

/**
 * Σ(x_p − x_q)² in float64 over float32 rows, 8 coordinates per step in a fixed order. Returns a
 * partial sum as soon as it exceeds `bound` (it can only grow), so the caller must treat any value
 * above `bound` as "too far" and nothing else.
 */
function dist2f(x: Float32Array, po: number, qo: number, d: number, bound: number): number {
  let s = 0;
  let t = 0;
  for (; t + 8 <= d; t += 8) {
    const a0 = x[po + t] - x[qo + t];
    const a1 = x[po + t + 1] - x[qo + t + 1];
    const a2 = x[po + t + 2] - x[qo + t + 2];
    const a3 = x[po + t + 3] - x[qo + t + 3];
    const a4 = x[po + t + 4] - x[qo + t + 4];
    const a5 = x[po + t + 5] - x[qo + t + 5];
    const a6 = x[po + t + 6] - x[qo + t + 6];
    const a7 = x[po + t + 7] - x[qo + t + 7];
    s += a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3 + (a4 * a4 + a5 * a5 + a6 * a6 + a7 * a7);
    if (s > bound) return s;
  }
  for (; t < d; t++) {
    const a = x[po + t] - x[qo + t];
    s += a * a;
  }
  return s;
}

/** Per point, a max-heap of its m best others by (squared distance, index), with a "new" flag each. */
class NeighbourHeaps {
  readonly dist: Float64Array;
  readonly idx: Int32Array;
  readonly isNew: Uint8Array;

  constructor(
    n: number,
    private readonly m: number,
  ) {
    this.dist = new Float64Array(n * m).fill(Infinity);
    this.idx = new Int32Array(n * m).fill(0x7fffffff);
    this.isNew = new Uint8Array(n * m);
  }

  /** Offers every pair inside each leaf [leaves[l], leaves[l+1]) of `order` to both ends. */
  offerLeaves(x: Float32Array, d: number, order: Int32Array, leaves: number[]): void {
    for (let l = 0; l < leaves.length; l += 2) {
      const end = leaves[l + 1];
      for (let a = leaves[l]; a < end; a++) {
        const p = order[a];
        for (let b = a + 1; b < end; b++) this.offerPair(x, d, p, order[b]);
      }
    }
  }

  /** Offers p to q's list and q to p's; returns how many lists changed (0–2). */
  offerPair(x: Float32Array, d: number, p: number, q: number): number {
    const dp = this.dist[p * this.m];
    const dq = this.dist[q * this.m];
    const bound = dp > dq ? dp : dq;
    const s = dist2f(x, p * d, q * d, d, bound);
    if (s > bound) return 0;
    return this.push(p, s, q) + this.push(q, s, p);
  }

  /** Offers j to i's list; 1 when it entered (displacing the worst), 0 when worse or already there. */
  push(i: number, s: number, j: number): number {
    const m = this.m;
    const base = i * m;
    const dist = this.dist;
    const idx = this.idx;
    if (s > dist[base] || (s === dist[base] && j >= idx[base])) return 0;
    for (let r = 0; r < m; r++) if (idx[base + r] === j) return 0;
    // Replace the root and sift down; the larger (distance, index) child rises.
    let at = 0;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= m) break;
      let c = l;
      const rr = l + 1;
      if (rr < m && (dist[base + rr] > dist[base + l] || (dist[base + rr] === dist[base + l] && idx[base + rr] > idx[base + l]))) c = rr;
      if (dist[base + c] > s || (dist[base + c] === s && idx[base + c] > j)) {
        dist[base + at] = dist[base + c];
        idx[base + at] = idx[base + c];
        this.isNew[base + at] = this.isNew[base + c];
        at = c;
      } else break;
    }
    dist[base + at] = s;
    idx[base + at] = j;
    this.isNew[base + at] = 1;
    return 1;
  }
}

/** murmur3's 32-bit finaliser: a hashed, seeded priority per list entry without a sequential stream. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Per point, up to `cap` distinct candidates kept by smallest priority (a max-heap on it). */
class CandidateHeaps {
  readonly pri: Int32Array;
  readonly idx: Int32Array;
  readonly count: Int32Array;

  constructor(
    n: number,
    private readonly cap: number,
  ) {
    this.pri = new Int32Array(n * cap);
    this.idx = new Int32Array(n * cap);
    this.count = new Int32Array(n);
  }

  clear(): void {
    this.count.fill(0);
  }

  has(i: number, j: number): boolean {
    const base = i * this.cap;
    for (let r = 0, c = this.count[i]; r < c; r++) if (this.idx[base + r] === j) return true;
    return false;
  }

  push(i: number, p: number, j: number): void {
    const cap = this.cap;
    const base = i * cap;
    const pri = this.pri;
    const idx = this.idx;
    const c = this.count[i];
    if (c === cap && p >= pri[base]) return;
    if (this.has(i, j)) return;
    if (c < cap) {
      // Append and sift up.
      let at = c;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (pri[base + parent] >= p) break;
        pri[base + at] = pri[base + parent];
        idx[base + at] = idx[base + parent];
        at = parent;
      }
      pri[base + at] = p;
      idx[base + at] = j;
      this.count[i] = c + 1;
      return;
    }
    // Full: replace the root (largest priority) and sift down.
    let at = 0;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= cap) break;
      let ch = l;
      if (l + 1 < cap && pri[base + l + 1] > pri[base + l]) ch = l + 1;
      if (pri[base + ch] <= p) break;
      pri[base + at] = pri[base + ch];
      idx[base + at] = idx[base + ch];
      at = ch;
    }
    pri[base + at] = p;
    idx[base + at] = j;
  }
}
