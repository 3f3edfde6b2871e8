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
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Gpu } from "../gpu/device.js";

export interface Knn {
  n: number;
  k: number;
  /** n × k row-major; column 0 is the point itself. */
  indices: Int32Array;
  /** n × k row-major euclidean distances (not squared), non-decreasing along each row. */
  distances: Float32Array;
}

/** Rows per tile: 128 × 50 float64 = 50 KB, so a query tile and a reference tile sit in L2 together. */
const TILE = 128;
/**
 * Below this many points the default is one thread. Measured on this 2-core VM: one worker's start
 * (boot, then compiling the kernel from cold) costs 0.05–0.1 s, the one-thread scan of 2,000 × 50
 * points 0.16–0.23 s CPU (a second thread breaks about even), of 4,000 × 50 0.6–0.85 s.
 */
const EXACT_PARALLEL_MIN_N = 4_000;

/**
 * Threads: `threads` participants (default: os.availableParallelism() capped at MAX_THREADS when
 * n ≥ EXACT_PARALLEL_MIN_N, else 1) — this thread plus worker_threads over SharedArrayBuffers (the
 * runtime knnApproxCpu uses), claiming (query tile, reference tile) pairs from a shared counter.
 * Each pair of points is still computed once and offered to both lists, a list taking a per-point
 * spin lock to insert. The lists are the best k − 1 of everything offered under a strict order on
 * (squared distance, index), so the output is byte-identical for every thread count.
 */
export function knnExactCpu(points: Float32Array, n: number, d: number, k: number, opts: { threads?: number } = {}): Knn {
  if (!Number.isInteger(n) || !Number.isInteger(d) || !Number.isInteger(k) || n < 1 || d < 1) {
    throw new RangeError(`knnExactCpu: n, d must be positive integers (got n=${n}, d=${d}, k=${k})`);
  }
  if (k < 1 || k > n) throw new RangeError(`knnExactCpu: need 1 <= k <= n (got k=${k}, n=${n})`);
  if (points.length !== n * d) {
    throw new RangeError(`knnExactCpu: points has ${points.length} values, expected n*d = ${n * d}`);
  }
  const m = k - 1; // neighbours besides self
  const W = m === 0 ? 1 : defaultThreads(opts.threads, n, EXACT_PARALLEL_MIN_N);
  const S = exactState(n, d, m, W);
  S.x.set(points);

  if (m > 0) {
    try {
      startWorkers(S, exactKernel);
      runPhase(S, exactKernel, PHASE_EXACT_PAIRS, 0, "knnExactCpu");
    } finally {
      stopWorkers(S);
    }
  }

  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    indices[i * k] = i;
    distances[i * k] = 0;
    for (let r = 0; r < m; r++) {
      indices[i * k + 1 + r] = S.bestI[i * m + r];
      distances[i * k + 1 + r] = Math.sqrt(S.bestD[i * m + r]);
    }
  }
  return { n, k, indices, distances };
}

/** What knnExactCpu's participants share. */
interface ExactState extends Team {
  n: number;
  d: number;
  m: number;
  tile: number;
  /** n × d points, float64. */
  x: Float64Array;
  /** Per point: the best m others so far, sorted ascending by (squared distance, index). */
  bestD: Float64Array;
  bestI: Int32Array;
  locks: Int32Array;
  /** The next unclaimed tile pair. */
  next: Int32Array;
}

function exactState(n: number, d: number, m: number, W: number): ExactState {
  const bestD = typedArray(Float64Array, 8, n * m, W);
  bestD.fill(Infinity);
  const bestI = typedArray(Int32Array, 4, n * m, W);
  bestI.fill(0x7fffffff);
  return {
    W,
    ctrl: typedArray(Int32Array, 4, CTRL_RESULT + W, W),
    n,
    d,
    m,
    tile: TILE,
    x: typedArray(Float64Array, 8, n * d, W),
    bestD,
    bestI,
    locks: typedArray(Int32Array, 4, W > 1 ? n : 0, W),
    next: typedArray(Int32Array, 4, 1, W),
  };
}

const PHASE_EXACT_PAIRS = 0;

/**
 * Participant w's share of the exact scan: (query tile a, reference tile b) pairs, a ≤ b, over the
 * first nEven = n − (n mod 2) rows, claimed one at a time in the order b = 0, 1, … (a = 0..b within
 * b, so a reference tile stays in cache while the query tiles stream past it). Rows go two by two
 * (a 2 × 2 register block reuses each load twice: ~1.8× faster than one pair at a time in V8); a
 * diagonal pair (a = b) also takes the pairs (i, i+1) and, for odd n, the last row against its rows.
 * Self-contained — no outside names — because workers run it from its source text.
 */
function exactKernel(S: ExactState, phase: number, _w: number, _arg: number): number {
  if (phase !== 0) throw new Error(`knnExactCpu: unknown phase ${phase}`);
  const n = S.n;
  const d = S.d;
  const m = S.m;
  const W = S.W;
  const tile = S.tile;
  const x = S.x;
  const bestD = S.bestD;
  const bestI = S.bestI;
  const locks = S.locks;
  const nEven = n - (n & 1);
  const nTiles = Math.ceil(nEven / tile);
  const units = (nTiles * (nTiles + 1)) / 2;
  for (let u = Atomics.add(S.next, 0, 1); u < units; u = Atomics.add(S.next, 0, 1)) {
    let b = Math.floor((Math.sqrt(8 * u + 1) - 1) / 2);
    while (((b + 1) * (b + 2)) / 2 <= u) b++;
    while ((b * (b + 1)) / 2 > u) b--;
    const a = u - (b * (b + 1)) / 2;
    const i0 = a * tile;
    const i1 = Math.min(nEven, i0 + tile);
    const j0 = b * tile;
    const j1 = Math.min(nEven, j0 + tile);
    if (a === b) {
      for (let i = i0; i < i1; i += 2) {
        const s = dist2(i * d, (i + 1) * d);
        offer(i, s, i + 1);
        offer(i + 1, s, i);
        for (let j = i + 2; j < j1; j += 2) block2x2(i, j);
      }
      if (n & 1) {
        const last = n - 1;
        for (let j = j0; j < j1; j++) {
          const s = dist2(last * d, j * d);
          offer(last, s, j);
          offer(j, s, last);
        }
      }
    } else {
      for (let i = i0; i < i1; i += 2) for (let j = j0; j < j1; j += 2) block2x2(i, j);
    }
  }
  return 0;

  /**
   * Squared distance Σ(x_i − x_j)², float64, two accumulators (even / odd coordinates) and a
   * trailing odd coordinate added last. block2x2 sums in exactly this order, so a pair's distance
   * does not depend on which path computed it: exact duplicates tie exactly, and the tie goes by index.
   */
  function dist2(io: number, jo: number): number {
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
  function block2x2(i: number, j: number): void {
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
    offer(i, sa, j);
    offer(i, sb, j + 1);
    offer(i + 1, sc, j);
    offer(i + 1, se, j + 1);
    offer(j, sa, i);
    offer(j + 1, sb, i);
    offer(j, sc, i + 1);
    offer(j + 1, se, i + 1);
  }

  /**
   * Offers j at squared distance s to p's list. The unlocked first test reads the list's worst,
   * which only ever decreases (every write moves a smaller entry into a slot), so a stale value
   * only sends more offers on to the locked test.
   */
  function offer(p: number, s: number, j: number): void {
    if (s > bestD[p * m + m - 1]) return;
    if (W === 1) {
      insert(p * m, s, j);
      return;
    }
    while (Atomics.compareExchange(locks, p, 0, 1) !== 0);
    insert(p * m, s, j);
    Atomics.store(locks, p, 0);
  }

  /** Inserts (s, j) into the sorted buffer at [o, o+m) if it beats the current worst. */
  function insert(o: number, s: number, j: number): void {
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
 * pair offered to both lists. Stops when fewer than delta·n·k list entries are new after a round,
 * or after maxIterations (default max(5, log2 n)).
 * Speed: the first tree is built on the input; everything else runs on a copy of the points
 * reordered by its leaves, so a point's neighbours mostly sit near it in memory. Trees partition
 * stably, so every level reads its node's points in increasing memory order. A pair's squared
 * distance is abandoned (every 8 coordinates) once it exceeds both lists' current worst, which with
 * PCA-ordered coordinates (variance front-loaded) usually happens early; a completed distance is
 * summed in the same order either way.
 * Threads: `threads` participants (default: os.availableParallelism() capped at MAX_THREADS when
 * n ≥ PARALLEL_MIN_N, else 1) — this thread plus worker_threads over SharedArrayBuffers, each phase
 * split by point ranges, a barrier between phases. The result does not depend on the thread count
 * or timing because every phase's outcome is a function of the set of offers it makes, not their
 * order: a list is the best L of everything offered (a strict order on (distance, index)), a
 * candidate sample the smallest `cap` by (pair priority, index) with the priority a hash of the
 * unordered pair, and after each phase every list is rewritten in one canonical layout (sorted
 * descending, itself a valid max-heap). Concurrent pushes to one list take a per-point spin lock;
 * the unlocked early-abandon bound reads a list's root, which only ever shrinks, so a stale value
 * only costs work.
 * Differences from pynndescent: the search keeps m + EXTRA entries per list and returns the best m
 * (recall at 200,000 points 0.835 → 0.917, for ~1.7× the work); candidate cap max(k, 20) rather
 * than min(60, k); ties in the lists broken by index.
 */
export function knnApproxCpu(
  points: Float32Array,
  n: number,
  d: number,
  k: number,
  opts: { seed?: number; maxIterations?: number; delta?: number; threads?: number } = {},
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
  const W = defaultThreads(opts.threads, n, PARALLEL_MIN_N);
  const m = k - 1; // neighbours besides self
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) indices[i * k] = i;
  if (m === 0) return { n, k, indices, distances };

  const rng = new Rng(seed);
  const nTrees = n < 10_000 ? 4 : n < 200_000 ? 6 : 8;
  // Lists keep EXTRA more than asked: NN-descent converges much closer to the true top m when the
  // lists it joins reach further (200,000 × 50 PCA-like points: recall 0.835 with m = 14, 0.917 with 24).
  const L = Math.min(n - 1, m + EXTRA);
  const cap = Math.max(k, 20);
  const S = approxState(n, d, L, cap, W, nTrees);
  for (let t = 0; t < nTrees; t++) S.treeSeeds[t] = rng.nextU32() | 0;

  // Tree 0 on the input; its leaf order becomes the working order: perm[p] is the input row at
  // working position p, and tree 0's leaves are contiguous ranges of working positions.
  S.n = n;
  approxKernel(S, PHASE_TREE0, 0, 0, points);
  const perm = S.orders.slice(0, n);
  for (let p = 0; p < n; p++) {
    S.x.set(points.subarray(perm[p] * d, perm[p] * d + d), p * d);
    S.orders[p] = p;
  }

  try {
    startWorkers(S, approxKernel);
    const phase = (p: number, arg: number): number => runPhase(S, approxKernel, p, arg, "knnApproxCpu");
    phase(PHASE_TREES, 0);
    phase(PHASE_LEAVES, 0);
    phase(PHASE_FILL, rng.nextU32() | 0);
    phase(PHASE_CANON, 0);
    for (let iter = 0; iter < maxIterations; iter++) {
      phase(PHASE_CANDIDATES, rng.nextU32() | 0);
      phase(PHASE_MARK, 0);
      phase(PHASE_JOIN, 0);
      const updates = phase(PHASE_CANON, 0);
      if (updates < delta * n * k) break;
    }
  } finally {
    stopWorkers(S);
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
      rowI[r] = perm[S.hi[base + r]];
    }
    order.sort((a, b) => S.hd[base + a] - S.hd[base + b] || rowI[a] - rowI[b]);
    for (let r = 0; r < m; r++) {
      indices[i * k + 1 + r] = rowI[order[r]];
      distances[i * k + 1 + r] = Math.sqrt(S.hd[base + order[r]]);
    }
  }
  return { n, k, indices, distances };
}

/** Extra list entries kept during the search (see knnApproxCpu). */
const EXTRA = 10;
/** Below this many points the default is one thread: starting workers costs more than it saves. */
const PARALLEL_MIN_N = 50_000;

const PHASE_TREE0 = 0;
const PHASE_TREES = 1;
const PHASE_LEAVES = 2;
const PHASE_FILL = 3;
const PHASE_CANON = 4;
const PHASE_CANDIDATES = 5;
const PHASE_MARK = 6;
const PHASE_JOIN = 7;

/** Everything the phases share; typed arrays on SharedArrayBuffers when there are workers. */
interface ApproxState extends Team {
  n: number;
  d: number;
  L: number;
  cap: number;
  nTrees: number;
  /** pynndescent's default leaf size for k ≤ 30 would be 30; 48 makes fewer trees reach the same recall. */
  leafSize: number;
  /** n × d points in working order. */
  x: Float32Array;
  /** n × L neighbour lists: max-heaps on (squared distance, index); flag 0 old, 1 new, 2 entered this phase. */
  hd: Float64Array;
  hi: Int32Array;
  hn: Uint8Array;
  /** n × cap "new" / "old" candidate samples: max-heaps on (priority, index), with counts. */
  fi: Int32Array;
  fp: Int32Array;
  fc: Int32Array;
  oi: Int32Array;
  op: Int32Array;
  oc: Int32Array;
  locks: Int32Array;
  treeSeeds: Int32Array;
  /** Per tree: the positions leaf by leaf, and a 1 where a leaf starts. */
  orders: Int32Array;
  leafStart: Uint8Array;
  /** n ints of partition scratch per participant. */
  tmp: Int32Array;
}

function approxState(n: number, d: number, L: number, cap: number, W: number, nTrees: number): ApproxState {
  const alloc = <T>(C: new (b: ArrayBufferLike) => T, bytesPer: number, len: number): T => typedArray(C, bytesPer, len, W);
  const hd = alloc(Float64Array, 8, n * L);
  hd.fill(Infinity);
  const hi = alloc(Int32Array, 4, n * L);
  hi.fill(0x7fffffff);
  return {
    n,
    d,
    L,
    cap,
    W,
    nTrees,
    leafSize: 48,
    x: alloc(Float32Array, 4, n * d),
    hd,
    hi,
    hn: alloc(Uint8Array, 1, n * L),
    fi: alloc(Int32Array, 4, n * cap),
    fp: alloc(Int32Array, 4, n * cap),
    fc: alloc(Int32Array, 4, n),
    oi: alloc(Int32Array, 4, n * cap),
    op: alloc(Int32Array, 4, n * cap),
    oc: alloc(Int32Array, 4, n),
    locks: alloc(Int32Array, 4, n),
    treeSeeds: alloc(Int32Array, 4, nTrees),
    orders: alloc(Int32Array, 4, nTrees * n),
    leafStart: alloc(Uint8Array, 1, nTrees * n),
    tmp: alloc(Int32Array, 4, W * n),
    ctrl: alloc(Int32Array, 4, CTRL_RESULT + W),
  };
}

/*
 * The worker runtime both kNN searches use: a state object (typed arrays on SharedArrayBuffers)
 * handed to W − 1 worker_threads, and a kernel run by every participant phase by phase, this
 * thread being participant 0, a barrier after each phase.
 */

const MAX_THREADS = 8;
/** ctrl slots: generation (bumped to start a phase), phase, its argument, workers done, error flag, then one result per participant. */
const CTRL_GEN = 0;
const CTRL_PHASE = 1;
const CTRL_ARG = 2;
const CTRL_DONE = 3;
const CTRL_ERROR = 4;
const CTRL_RESULT = 5;
const PHASE_QUIT = -1;

/** What the runtime needs of a state: the participant count and ctrl (CTRL_RESULT + W slots). */
interface Team {
  W: number;
  ctrl: Int32Array;
}

/** Participant w's share of a phase; self-contained (no outside names), as workers run it from its source text. */
type Kernel<S extends Team> = (S: S, phase: number, w: number, arg: number) => number;

/** `threads` if given, else availableParallelism() capped at MAX_THREADS from `minN` points up, else 1. */
function defaultThreads(threads: number | undefined, n: number, minN: number): number {
  return Math.max(1, Math.floor(threads ?? (n >= minN ? Math.min(MAX_THREADS, availableParallelism()) : 1)));
}

/** A typed array of `len` elements, on a SharedArrayBuffer when there are workers (W > 1). */
function typedArray<T>(C: new (b: ArrayBufferLike) => T, bytesPer: number, len: number, W: number): T {
  return new C(W > 1 ? new SharedArrayBuffer(bytesPer * len) : new ArrayBuffer(bytesPer * len));
}

/** Starts participants 1 .. W−1 (none when W = 1); they idle until runPhase and end at stopWorkers (call it in a finally). */
function startWorkers<S extends Team>(S: S, kernel: Kernel<S>): void {
  if (S.W === 1) return;
  const source = workerSource(kernel);
  for (let w = 1; w < S.W; w++) new Worker(source, { eval: true, workerData: { S, w } }).unref();
}

function stopWorkers(S: Team): void {
  if (S.W === 1) return;
  Atomics.store(S.ctrl, CTRL_PHASE, PHASE_QUIT);
  Atomics.add(S.ctrl, CTRL_GEN, 1);
  Atomics.notify(S.ctrl, CTRL_GEN);
}

/** Runs one phase on every participant (this thread is participant 0) and returns the sum of their results. */
function runPhase<S extends Team>(S: S, kernel: Kernel<S>, phase: number, arg: number, caller: string): number {
  const c = S.ctrl;
  if (S.W === 1) return kernel(S, phase, 0, arg);
  Atomics.store(c, CTRL_PHASE, phase);
  Atomics.store(c, CTRL_ARG, arg);
  Atomics.store(c, CTRL_DONE, 0);
  Atomics.add(c, CTRL_GEN, 1);
  Atomics.notify(c, CTRL_GEN);
  let total = kernel(S, phase, 0, arg);
  for (;;) {
    const done = Atomics.load(c, CTRL_DONE);
    if (Atomics.load(c, CTRL_ERROR) !== 0) throw new Error(`${caller}: a worker thread failed (its error is on stderr)`);
    if (done === S.W - 1) break;
    Atomics.wait(c, CTRL_DONE, done, 1000);
  }
  for (let w = 1; w < S.W; w++) total += c[CTRL_RESULT + w];
  return total;
}

/**
 * A worker: waits for the generation counter to move, runs its share of the phase, reports. Built
 * from the kernel's own source text, so it needs no separate file in the bundle or under tsx.
 */
function workerSource<S extends Team>(kernel: Kernel<S>): string {
  return `"use strict";
var __name = (f) => f;
const { workerData } = require("node:worker_threads");
const kernel = (${kernel.toString()});
const S = workerData.S;
const w = workerData.w;
const c = S.ctrl;
let gen = 0;
for (;;) {
  while (Atomics.load(c, ${CTRL_GEN}) === gen) Atomics.wait(c, ${CTRL_GEN}, gen);
  gen = Atomics.load(c, ${CTRL_GEN});
  const phase = Atomics.load(c, ${CTRL_PHASE});
  if (phase === ${PHASE_QUIT}) break;
  try {
    c[${CTRL_RESULT} + w] = kernel(S, phase, w, Atomics.load(c, ${CTRL_ARG}));
  } catch (e) {
    console.error(e);
    Atomics.store(c, ${CTRL_ERROR}, 1);
  }
  Atomics.add(c, ${CTRL_DONE}, 1);
  Atomics.notify(c, ${CTRL_DONE});
}
`;
}

/**
 * Participant w's share of one phase (point range [n·w/W, n·(w+1)/W) unless said otherwise).
 * Self-contained — no outside names, numbers as literals — because workers run it from its source
 * text. Phases (numbers as in PHASE_*):
 * 0 tree 0 over `src` (the input), participant 0 only; 1 trees 1.. over S.x, tree t by participant
 * t mod W; 2 every pair in every leaf offered to both lists, a leaf by the participant whose range
 * holds its start; 3 short lists topped up with hashed-random others; 4 canonical layout, candidate
 * counts cleared, returns how many entries entered since the last canonical layout; 5 candidate
 * samples (priority salt `arg`); 6 sampled new entries flagged old; 7 the local join.
 */
function approxKernel(S: ApproxState, phase: number, w: number, arg: number, src: Float32Array = S.x): number {
  const n = S.n;
  const d = S.d;
  const L = S.L;
  const cap = S.cap;
  const W = S.W;
  const lo = Math.floor((n * w) / W);
  const hi = Math.floor((n * (w + 1)) / W);
  const x = S.x;
  const hd = S.hd;
  const hidx = S.hi;
  const hn = S.hn;
  const locks = S.locks;

  if (phase === 0) {
    buildTree(src, S.treeSeeds[0], 0);
    return 0;
  }
  if (phase === 1) {
    for (let t = 1 + w; t < S.nTrees; t += W) buildTree(x, S.treeSeeds[t], t);
    return 0;
  }
  if (phase === 2) {
    for (let t = 0; t < S.nTrees; t++) {
      const order = S.orders.subarray(t * n, t * n + n);
      const starts = S.leafStart.subarray(t * n, t * n + n);
      for (let a = lo; a < hi; a++) {
        if (starts[a] === 0) continue;
        let end = a + 1;
        while (end < n && starts[end] === 0) end++;
        for (let u = a; u < end; u++) {
          const p = order[u];
          for (let v = u + 1; v < end; v++) offerPair(p, order[v]);
        }
      }
    }
    return 0;
  }
  if (phase === 3) {
    for (let p = lo; p < hi; p++) {
      // Only p's own list changes here, so no lock.
      for (let a = 0; hd[p * L] === Infinity; a++) {
        const q = fmix32((fmix32((Math.imul(p, 0x9e3779b1) ^ arg) >>> 0) + a) >>> 0) % n;
        if (q !== p) push(p, dist2f(p * d, q * d, Infinity), q);
      }
    }
    return 0;
  }
  if (phase === 4) {
    let entered = 0;
    for (let p = lo; p < hi; p++) {
      const base = p * L;
      // Insertion sort, descending by (distance, index): a sorted array is a valid max-heap, and
      // one that depends only on the set of entries.
      for (let r = 1; r < L; r++) {
        const sd = hd[base + r];
        const si = hidx[base + r];
        const sn = hn[base + r];
        let q = r;
        while (q > 0 && (hd[base + q - 1] < sd || (hd[base + q - 1] === sd && hidx[base + q - 1] < si))) {
          hd[base + q] = hd[base + q - 1];
          hidx[base + q] = hidx[base + q - 1];
          hn[base + q] = hn[base + q - 1];
          q--;
        }
        hd[base + q] = sd;
        hidx[base + q] = si;
        hn[base + q] = sn;
      }
      for (let r = 0; r < L; r++) {
        if (hn[base + r] === 2) {
          entered++;
          hn[base + r] = 1;
        }
      }
      S.fc[p] = 0;
      S.oc[p] = 0;
    }
    return entered;
  }
  if (phase === 5) {
    for (let p = lo; p < hi; p++) {
      for (let r = 0; r < L; r++) {
        const e = p * L + r;
        const q = hidx[e];
        // A hash of the unordered pair: p's offer of q and q's offer of p carry the same priority.
        const a = p < q ? p : q;
        const b = p < q ? q : p;
        const pri = fmix32((fmix32((Math.imul(a, 0x9e3779b1) ^ arg) >>> 0) + b) >>> 0) >>> 1;
        if (hn[e] === 1) {
          candidate(S.fi, S.fp, S.fc, p, pri, q);
          candidate(S.fi, S.fp, S.fc, q, pri, p);
        } else {
          candidate(S.oi, S.op, S.oc, p, pri, q);
          candidate(S.oi, S.op, S.oc, q, pri, p);
        }
      }
    }
    return 0;
  }
  if (phase === 6) {
    // Neighbours that made it into the sample are joined now; later rounds treat them as old.
    for (let p = lo; p < hi; p++) {
      const base = p * cap;
      const c = S.fc[p];
      for (let r = 0; r < L; r++) {
        const e = p * L + r;
        if (hn[e] !== 1) continue;
        const q = hidx[e];
        for (let s = 0; s < c; s++) {
          if (S.fi[base + s] === q) {
            hn[e] = 0;
            break;
          }
        }
      }
    }
    return 0;
  }
  if (phase === 7) {
    const fi = S.fi;
    const oi = S.oi;
    for (let i = lo; i < hi; i++) {
      const base = i * cap; // both candidate samples share the layout
      const nc = S.fc[i];
      const oc = S.oc[i];
      for (let a = 0; a < nc; a++) {
        const p = fi[base + a];
        for (let b = a + 1; b < nc; b++) offerPair(p, fi[base + b]);
        for (let b = 0; b < oc; b++) {
          const q = oi[base + b];
          if (q !== p) offerPair(p, q);
        }
      }
    }
    return 0;
  }
  throw new Error(`knnApproxCpu: unknown phase ${phase}`);

  /** murmur3's 32-bit finaliser. */
  function fmix32(h: number): number {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /**
   * Σ(x_p − x_q)² in float64 over float32 rows, 8 coordinates per step in a fixed order. Returns a
   * partial sum as soon as it exceeds `bound` (it can only grow), so the caller must treat any
   * value above `bound` as "too far" and nothing else.
   */
  function dist2f(po: number, qo: number, bound: number): number {
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

  /** Offers p to q's list and q to p's. */
  function offerPair(p: number, q: number): void {
    const dp = hd[p * L];
    const dq = hd[q * L];
    const bound = dp > dq ? dp : dq;
    const s = dist2f(p * d, q * d, bound);
    if (s > bound) return;
    if (W === 1) {
      push(p, s, q);
      push(q, s, p);
      return;
    }
    if (s <= hd[p * L]) {
      while (Atomics.compareExchange(locks, p, 0, 1) !== 0);
      push(p, s, q);
      Atomics.store(locks, p, 0);
    }
    if (s <= hd[q * L]) {
      while (Atomics.compareExchange(locks, q, 0, 1) !== 0);
      push(q, s, p);
      Atomics.store(locks, q, 0);
    }
  }

  /** Offers j to i's list: enters (displacing the worst, flagged 2) unless worse or already there. */
  function push(i: number, s: number, j: number): void {
    const base = i * L;
    if (s > hd[base] || (s === hd[base] && j >= hidx[base])) return;
    for (let r = 0; r < L; r++) if (hidx[base + r] === j) return;
    // Replace the root and sift down; the larger (distance, index) child rises.
    let at = 0;
    for (;;) {
      const l = 2 * at + 1;
      if (l >= L) break;
      let c = l;
      const rr = l + 1;
      if (rr < L && (hd[base + rr] > hd[base + l] || (hd[base + rr] === hd[base + l] && hidx[base + rr] > hidx[base + l]))) c = rr;
      if (hd[base + c] > s || (hd[base + c] === s && hidx[base + c] > j)) {
        hd[base + at] = hd[base + c];
        hidx[base + at] = hidx[base + c];
        hn[base + at] = hn[base + c];
        at = c;
      } else break;
    }
    hd[base + at] = s;
    hidx[base + at] = j;
    hn[base + at] = 2;
  }

  /** Offers j (priority p) to i's sample: the `cap` smallest by (priority, index), no repeats. */
  function candidate(idx: Int32Array, pri: Int32Array, count: Int32Array, i: number, p: number, j: number): void {
    if (W > 1) while (Atomics.compareExchange(locks, i, 0, 1) !== 0);
    const base = i * cap;
    const c = count[i];
    let skip = c === cap && (p > pri[base] || (p === pri[base] && j >= idx[base]));
    for (let r = 0; !skip && r < c; r++) if (idx[base + r] === j) skip = true;
    if (!skip && c < cap) {
      // Append and sift up.
      let at = c;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (pri[base + parent] > p || (pri[base + parent] === p && idx[base + parent] > j)) break;
        pri[base + at] = pri[base + parent];
        idx[base + at] = idx[base + parent];
        at = parent;
      }
      pri[base + at] = p;
      idx[base + at] = j;
      count[i] = c + 1;
    } else if (!skip) {
      // Full: replace the root (largest key) and sift down.
      let at = 0;
      for (;;) {
        const l = 2 * at + 1;
        if (l >= cap) break;
        let ch = l;
        if (l + 1 < cap && (pri[base + l + 1] > pri[base + l] || (pri[base + l + 1] === pri[base + l] && idx[base + l + 1] > idx[base + l]))) ch = l + 1;
        if (pri[base + ch] < p || (pri[base + ch] === p && idx[base + ch] < j)) break;
        pri[base + at] = pri[base + ch];
        idx[base + at] = idx[base + ch];
        at = ch;
      }
      pri[base + at] = p;
      idx[base + at] = j;
    }
    if (W > 1) Atomics.store(locks, i, 0);
  }

  /**
   * Random-projection tree t over the rows of `pts` (n × d), into S.orders / S.leafStart row t. A
   * node splits by the sign of (x − (a+b)/2)·(a − b) for two of its rows a, b drawn by a hashed
   * counter from `treeSeed`; a point on the plane goes to the side a hashed bit picks, and a split
   * that leaves one side empty (all projections equal: duplicates) halves the node as it stands.
   * The partition is stable, so each node's rows stay in increasing memory order.
   */
  function buildTree(pts: Float32Array, treeSeed: number, t: number): void {
    const order = S.orders.subarray(t * n, t * n + n);
    const starts = S.leafStart.subarray(t * n, t * n + n);
    const tmp = S.tmp.subarray(w * n, w * n + n);
    const normal = new Float64Array(d);
    const margins = new Float64Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    starts.fill(0);
    let draw = 0;
    const stack: number[] = [0, n];
    while (stack.length > 0) {
      const end = stack.pop() as number;
      const start = stack.pop() as number;
      const size = end - start;
      if (size <= S.leafSize) {
        starts[start] = 1;
        continue;
      }
      const a = order[start + (fmix32((treeSeed ^ fmix32(draw++)) >>> 0) % size)] * d;
      let b = order[start + (fmix32((treeSeed ^ fmix32(draw++)) >>> 0) % (size - 1))] * d;
      if (b === a) b = order[end - 1] * d;
      let offset = 0;
      for (let u = 0; u < d; u++) {
        const v = pts[a + u] - pts[b + u];
        normal[u] = v;
        offset -= (v * (pts[a + u] + pts[b + u])) / 2;
      }
      let nLeft = 0;
      for (let s = start; s < end; s++) {
        const o = order[s] * d;
        let margin = offset;
        for (let u = 0; u < d; u++) margin += normal[u] * pts[o + u];
        if (margin === 0) margin = fmix32((treeSeed ^ fmix32(draw++)) >>> 0) & 1 ? 1 : -1;
        margins[s] = margin;
        if (margin > 0) nLeft++;
      }
      let mid = start + (size >> 1);
      if (nLeft > 0 && nLeft < size) {
        let l = start;
        let r = 0;
        for (let s = start; s < end; s++) {
          if (margins[s] > 0) order[l++] = order[s];
          else tmp[r++] = order[s];
        }
        for (let s = 0; s < r; s++) order[l + s] = tmp[s];
        mid = start + nLeft;
      }
      // Right half pushed first so leaves come out left to right.
      stack.push(mid, end, start, mid);
    }
  }
}
