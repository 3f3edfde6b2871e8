/**
 * Approximate k-nearest neighbours by an inverted file (IVF-flat, as faiss IndexIVFFlat), euclidean,
 * on a dense row-major n × d float32 matrix (the PCs); CPU and GPU twins with bit-identical output.
 * Same contract as knnExactCpu (src/ops/knn.ts): self first at distance exactly 0, the other
 * k − 1 sorted by (distance, index).
 *
 * Algorithm: (1) k-means with nLists centroids (default round(√n), at most 4096) trained on a
 * seeded sample of min(n, 64·nLists) rows: centroids start at nLists distinct sample rows drawn
 * from the seed (faiss's init), then kmeansIters (default 10) Lloyd steps — assignment to the
 * nearest centroid (ties: lower index), means on the host in float64 over the sample in ascending
 * order, an empty cluster keeps its centroid. (2) Every point goes to its nearest centroid's list;
 * its nProbe (default 12) nearest centroids are its probe lists (the first is its own list).
 * (3) Each point, as a query, scans the points of its probe lists and keeps the k − 1 best by
 * (distance, index). A query whose probed lists hold fewer than k − 1 others is searched exactly.
 * nProbe = nLists is an exact search (up to the float32 distances below).
 *
 * Bit-identical twins: assignment and search distances are float32 sums computed the same way on
 * both sides (kernels/knn_ivf.wgsl explains: coordinates split so every product is exact, so fused
 * multiply-adds cannot change a bit; inputs snapped to a 2^-40 grid so nothing is subnormal — this
 * moves only coordinates below 2^-16 in magnitude, by < 2^-41); only those two steps run on the
 * GPU, everything else is shared host code. Distances returned are the f32 sqrt of the f32 squared
 * distance, so they can differ from knnExactCpu's (float64 sums) in the last bits.
 * Differences from faiss: the search is all-points-as-queries; ties are broken by index; the
 * k-means does not split large clusters into empty ones.
 */

import { Rng } from "../core/random.js";
import type { Gpu } from "../gpu/device.js";
import type { Knn } from "./knn.js";

export interface IvfOptions {
  /** Inverted lists (k-means centroids); default round(√n) capped at 4096, never above n. */
  nLists?: number;
  /** Lists scanned per query; default 12, never above nLists. */
  nProbe?: number;
  /** Seeds the training sample and the initial centroids. */
  seed?: number;
  /** Lloyd iterations; default 10. */
  kmeansIters?: number;
}

const DEFAULT_NPROBE = 12;
const MAX_LISTS = 4096;
const SAMPLE_PER_LIST = 64;
const DEFAULT_ITERS = 10;
/** Coordinates per point the GPU handles (query rows are read per vec4; kept for the binding plan). */
const DMAX = 256;
/** Largest f32: an empty list slot (kernels/knn_ivf.wgsl BIG). */
const BIG = 3.4028234663852886e38;
const UNFILLED = 0xffffffff;
/** |coordinate| bound so squared distances stay finite in f32 (3·256 terms below 2^114). */
const MAX_ABS = 2 ** 56;
const GRID = 2 ** 40;

interface Plan {
  n: number;
  k: number;
  m: number;
  /** Padded row width (4 · vec4s per row). */
  w: number;
  /** n × w snapped, zero-padded points. */
  x: Float32Array;
  nLists: number;
  nProbe: number;
  iters: number;
  /** Sample rows, ascending. */
  sample: Int32Array;
  /** Sample points, sample.length × w. */
  sx: Float32Array;
  /** Initial centroids, nLists × w. */
  cents: Float32Array;
}

/** Rounds a float32 value below 2^-16 in magnitude to the 2^-40 grid (exact there). */
function snap(v: number): number {
  return Math.abs(v) < 2 ** -16 ? Math.round(v * GRID) / GRID : v;
}

function plan(name: string, points: Float32Array, n: number, d: number, k: number, opts: IvfOptions): Plan {
  if (!Number.isInteger(n) || !Number.isInteger(d) || !Number.isInteger(k) || n < 1 || d < 1) {
    throw new RangeError(`${name}: n, d must be positive integers (got n=${n}, d=${d}, k=${k})`);
  }
  if (k < 1 || k > n) throw new RangeError(`${name}: need 1 <= k <= n (got k=${k}, n=${n})`);
  if (points.length !== n * d) throw new RangeError(`${name}: points has ${points.length} values, expected n*d = ${n * d}`);
  const posInt = (v: number | undefined, what: string, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new RangeError(`${name}: ${what} must be an integer >= ${min} (got ${v})`);
  };
  posInt(opts.nLists, "nLists", 1);
  posInt(opts.nProbe, "nProbe", 1);
  posInt(opts.kmeansIters, "kmeansIters", 0);
  const w = 4 * Math.ceil(d / 4);
  const x = new Float32Array(n * w);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < d; t++) {
      const v = points[i * d + t];
      if (!(Math.abs(v) <= MAX_ABS)) throw new RangeError(`${name}: row ${i} has a non-finite or huge (> 2^56) value`);
      x[i * w + t] = snap(v);
    }
  }
  const nLists = Math.min(n, opts.nLists ?? Math.min(MAX_LISTS, Math.max(1, Math.round(Math.sqrt(n)))));
  const nProbe = Math.min(nLists, opts.nProbe ?? DEFAULT_NPROBE);
  const rng = new Rng(opts.seed ?? 0);
  const s = Math.min(n, SAMPLE_PER_LIST * nLists);
  const sample = Int32Array.from(pick(n, s, rng)).sort();
  const sx = new Float32Array(s * w);
  for (let r = 0; r < s; r++) sx.set(x.subarray(sample[r] * w, sample[r] * w + w), r * w);
  const cents = new Float32Array(nLists * w);
  const first = pick(s, nLists, rng);
  for (let c = 0; c < nLists; c++) cents.set(sx.subarray(first[c] * w, first[c] * w + w), c * w);
  return { n, k, m: k - 1, w, x, nLists, nProbe, iters: opts.kmeansIters ?? DEFAULT_ITERS, sample, sx, cents };
}

/** The first `count` entries of a seeded partial Fisher–Yates shuffle of 0..n−1. */
function pick(n: number, count: number, rng: Rng): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = 0; i < count; i++) {
    const j = i + (rng.nextU32() % (n - i));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a.slice(0, count);
}

/** Lloyd update: float64 means of the sample rows per cluster (ascending order), snapped f32. */
function updateCentroids(p: Plan, assign: Uint32Array): void {
  const { w, nLists, sx } = p;
  const sum = new Float64Array(nLists * w);
  const count = new Float64Array(nLists);
  for (let r = 0; r < p.sample.length; r++) {
    const c = assign[r];
    count[c]++;
    for (let t = 0; t < w; t++) sum[c * w + t] += sx[r * w + t];
  }
  for (let c = 0; c < nLists; c++) {
    if (count[c] === 0) continue;
    for (let t = 0; t < w; t++) p.cents[c * w + t] = snap(Math.fround(sum[c * w + t] / count[c]));
  }
}

// Scratch for splitting a float32 into its high 12 significant bits (mask of the low 12 mantissa bits).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const fr = Math.fround;

/**
 * Squared distance between rows a[ao..] and b[bo..] (w coordinates), exactly as kernels/knn_ivf.wgsl
 * dist2 computes it; returns early (a value > bound) once a partial sum exceeds bound.
 */
function dist2(a: Float32Array, ao: number, b: Float32Array, bo: number, w: number, bound: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let t = 0; t < w; t += 4) {
    let z = fr(a[ao + t] - b[bo + t]);
    f32[0] = z;
    u32[0] &= 0xfffff000;
    let h = f32[0];
    let l = z - h;
    s0 = fr(fr(fr(s0 + h * h) + 2 * h * l) + l * l);
    z = fr(a[ao + t + 1] - b[bo + t + 1]);
    f32[0] = z;
    u32[0] &= 0xfffff000;
    h = f32[0];
    l = z - h;
    s1 = fr(fr(fr(s1 + h * h) + 2 * h * l) + l * l);
    z = fr(a[ao + t + 2] - b[bo + t + 2]);
    f32[0] = z;
    u32[0] &= 0xfffff000;
    h = f32[0];
    l = z - h;
    s2 = fr(fr(fr(s2 + h * h) + 2 * h * l) + l * l);
    z = fr(a[ao + t + 3] - b[bo + t + 3]);
    f32[0] = z;
    u32[0] &= 0xfffff000;
    h = f32[0];
    l = z - h;
    s3 = fr(fr(fr(s3 + h * h) + 2 * h * l) + l * l);
    if ((t & 15) === 12) {
      const s = fr(fr(s0 + s1) + fr(s2 + s3));
      if (s > bound) return s;
    }
  }
  return fr(fr(s0 + s1) + fr(s2 + s3));
}

/** A per-query list of `len` (squared distance, id) pairs, sorted; the insert of knn_ivf.wgsl. */
class TopList {
  readonly d: Float64Array;
  readonly i: Float64Array;
  constructor(readonly len: number) {
    this.d = new Float64Array(len);
    this.i = new Float64Array(len);
    this.clear();
  }
  clear(): void {
    this.d.fill(BIG);
    this.i.fill(UNFILLED);
  }
  get worstD(): number {
    return this.d[this.len - 1];
  }
  /** Offers (s, j); true when it entered. */
  offer(s: number, j: number): boolean {
    const d = this.d;
    const ix = this.i;
    let p = this.len - 1;
    if (s > d[p] || (s === d[p] && j >= ix[p])) return false;
    while (p > 0) {
      const pd = d[p - 1];
      if (pd < s || (pd === s && ix[p - 1] < j)) break;
      d[p] = pd;
      ix[p] = ix[p - 1];
      p--;
    }
    d[p] = s;
    ix[p] = j;
    return true;
  }
}

/**
 * The `len` nearest centroids (ids ascending by (distance, index)) of each of nRows rows. With len 1,
 * `hint` (the previous assignment) is offered first so most other centroids are abandoned early;
 * the (distance, index) order makes the result independent of the offer order.
 */
function probeCpu(rows: Float32Array, nRows: number, cents: Float32Array, nC: number, w: number, len: number, hint?: Uint32Array): Uint32Array {
  const out = new Uint32Array(nRows * len);
  const top = new TopList(len);
  for (let r = 0; r < nRows; r++) {
    top.clear();
    if (hint && len === 1) top.offer(dist2(rows, r * w, cents, hint[r] * w, w, BIG), hint[r]);
    for (let c = 0; c < nC; c++) top.offer(dist2(rows, r * w, cents, c * w, w, top.worstD), c);
    for (let p = 0; p < len; p++) out[r * len + p] = top.i[p];
  }
  return out;
}

/** Inverted lists: points reordered list by list (ascending index within a list). */
interface Lists {
  /** order[pos] = original row at list-ordered position pos. */
  order: Uint32Array;
  /** nLists + 1 offsets into order. */
  start: Uint32Array;
  /** n × w points in list order. */
  xs: Float32Array;
  /** n × nProbe probe lists in list order. */
  probes: Uint32Array;
}

function buildLists(p: Plan, probes: Uint32Array): Lists {
  const { n, w, nLists, nProbe } = p;
  const start = new Uint32Array(nLists + 1);
  for (let i = 0; i < n; i++) start[probes[i * nProbe] + 1]++;
  for (let c = 0; c < nLists; c++) start[c + 1] += start[c];
  const fill = start.slice(0, nLists);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[fill[probes[i * nProbe]]++] = i;
  const xs = new Float32Array(n * w);
  const ps = new Uint32Array(n * nProbe);
  for (let q = 0; q < n; q++) {
    const i = order[q];
    xs.set(p.x.subarray(i * w, i * w + w), q * w);
    ps.set(probes.subarray(i * nProbe, (i + 1) * nProbe), q * nProbe);
  }
  return { order, start, xs, probes: ps };
}

/** Writes query q's (list-ordered) result into out, from a filled list of m (squared distance, id). */
function emit(out: Knn, i: number, d: ArrayLike<number>, ids: ArrayLike<number>, m: number): void {
  const k = out.k;
  for (let r = 0; r < m; r++) {
    out.indices[i * k + 1 + r] = ids[r];
    out.distances[i * k + 1 + r] = Math.sqrt(d[r]);
  }
}

/** Exact scan of every other point for list-ordered query q (the fallback for under-filled lists). */
function exactQuery(p: Plan, L: Lists, q: number, top: TopList): void {
  top.clear();
  for (let j = 0; j < p.n; j++) {
    if (j !== q) top.offer(dist2(L.xs, q * p.w, L.xs, j * p.w, p.w, top.worstD), L.order[j]);
  }
}

function emptyKnn(p: Plan): Knn {
  const indices = new Int32Array(p.n * p.k);
  for (let i = 0; i < p.n; i++) indices[i * p.k] = i;
  return { n: p.n, k: p.k, indices, distances: new Float32Array(p.n * p.k) };
}

export function knnIvfCpu(points: Float32Array, n: number, d: number, k: number, opts: IvfOptions = {}): Knn {
  const p = plan("knnIvfCpu", points, n, d, k, opts);
  const out = emptyKnn(p);
  if (p.m === 0) return out;
  const { w, nLists, nProbe, m } = p;
  let assign: Uint32Array | undefined;
  for (let it = 0; it < p.iters; it++) {
    assign = probeCpu(p.sx, p.sample.length, p.cents, nLists, w, 1, assign);
    updateCentroids(p, assign);
  }
  const L = buildLists(p, probeCpu(p.x, n, p.cents, nLists, w, nProbe));
  const top = new TopList(m);
  for (let q = 0; q < n; q++) {
    top.clear();
    for (let r = 0; r < nProbe; r++) {
      const c = L.probes[q * nProbe + r];
      for (let j = L.start[c], hi = L.start[c + 1]; j < hi; j++) {
        if (j !== q) top.offer(dist2(L.xs, q * w, L.xs, j * w, w, top.worstD), L.order[j]);
      }
    }
    if (top.i[m - 1] === UNFILLED) exactQuery(p, L, q, top);
    emit(out, L.order[q], top.d, top.i, m);
  }
  return out;
}

/** Queries per dispatch: bounds one dispatch's run time (lavapipe runs it on the CPU). */
const QUERY_BLOCK = 16384;
const WG = 64;

/**
 * GPU twin of knnIvfCpu (kernels/knn_ivf.wgsl `probe` for the k-means assignments and probe lists,
 * `search` for the scan); same output bit for bit. Rows, centroids and per-query lists are cut into
 * chunks that each fit one storage binding; each query chunk meets every reference chunk in turn,
 * merging into its list on the device. Requires d ≤ 256 and nLists + 1 offsets in one binding.
 */
export async function knnIvfGpu(gpu: Gpu, points: Float32Array, n: number, d: number, k: number, opts: IvfOptions = {}): Promise<Knn> {
  const p = plan("knnIvfGpu", points, n, d, k, opts);
  if (d > DMAX) throw new RangeError(`knnIvfGpu: d=${d} exceeds the GPU limit ${DMAX}`);
  const out = emptyKnn(p);
  if (p.m === 0) return out;
  const { w, nLists, nProbe, m } = p;
  const code = (await import("../../kernels/knn_ivf.wgsl")).default;
  const probePipe = await gpu.pipeline(code, "probe");
  const searchPipe = await gpu.pipeline(code, "search");
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const d4 = w / 4;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const temp: GPUBuffer[] = [];
  const chunksOf = (data: Float32Array, rows: number, perChunk: number, label: string) => {
    if (perChunk < 1) throw new Error(`knnIvfGpu: one row (d=${d}, k=${k}, nProbe=${nProbe}) does not fit a ${limit}-byte binding`);
    const chunks: { start: number; rows: number; buf: GPUBuffer }[] = [];
    for (let start = 0; start < rows; start += perChunk) {
      const r = Math.min(perChunk, rows - start);
      const buf = gpu.upload(data.subarray(start * w, (start + r) * w), label);
      temp.push(buf);
      chunks.push({ start, rows: r, buf });
    }
    return chunks;
  };
  const dispatches = (nq: number, rest: number[], bind: (params: GPUBuffer) => (GPUBuffer | undefined)[], pipeline: GPUComputePipeline) => {
    const steps = [];
    for (let q0 = 0; q0 < nq; q0 += QUERY_BLOCK) {
      const params = gpu.uniforms({ u32: [nq, q0, ...rest] });
      temp.push(params);
      steps.push({ pipeline, bindings: bind(params), workgroups: Math.ceil(Math.min(QUERY_BLOCK, nq - q0) / WG) });
    }
    return steps;
  };

  /** `len` nearest centroids per row, as probeCpu. */
  const probeGpu = async (rowChunks: ReturnType<typeof chunksOf>, nRows: number, len: number): Promise<Uint32Array> => {
    const centChunks = chunksOf(p.cents, nLists, Math.floor(limit / (4 * w)), "ivf.cents");
    const res = new Uint32Array(nRows * len);
    for (const qc of rowChunks) {
      const bestD = gpu.createBuffer(qc.rows * len * 4, usage, "ivf.bestD");
      const bestI = gpu.createBuffer(qc.rows * len * 4, usage, "ivf.bestI");
      temp.push(bestD, bestI);
      const steps = centChunks.flatMap((cc, ci) =>
        dispatches(qc.rows, [qc.start, cc.start, cc.rows, len, ci === 0 ? 1 : 0, d4, 0], (params) => [params, qc.buf, cc.buf, bestD, bestI], probePipe),
      );
      await gpu.run("ivf_probe", steps);
      res.set(new Uint32Array(await gpu.readback(bestI, qc.rows * len * 4)), qc.start * len);
    }
    return res;
  };

  try {
    const sampleChunks = chunksOf(p.sx, p.sample.length, Math.floor(limit / (4 * w)), "ivf.sample");
    for (let it = 0; it < p.iters; it++) updateCentroids(p, await probeGpu(sampleChunks, p.sample.length, 1));
    const probes = await probeGpu(chunksOf(p.x, n, Math.floor(limit / (4 * Math.max(w, nProbe))), "ivf.points"), n, nProbe);
    const L = buildLists(p, probes);
    if ((nLists + 1) * 4 > limit) throw new Error(`knnIvfGpu: ${nLists + 1} list offsets do not fit a ${limit}-byte binding`);
    const startBuf = gpu.upload(L.start, "ivf.listStart");
    temp.push(startBuf);
    const rowChunks = chunksOf(L.xs, n, Math.floor(limit / (4 * Math.max(w, m, nProbe))), "ivf.lists");
    const idBufs = rowChunks.map((c) => gpu.upload(L.order.subarray(c.start, c.start + c.rows), "ivf.ids"));
    temp.push(...idBufs);
    const top = new TopList(m);
    for (const qc of rowChunks) {
      const bestD = gpu.createBuffer(qc.rows * m * 4, usage, "ivf.bestD");
      const bestI = gpu.createBuffer(qc.rows * m * 4, usage, "ivf.bestI");
      const probeBuf = gpu.upload(L.probes.subarray(qc.start * nProbe, (qc.start + qc.rows) * nProbe), "ivf.probes");
      temp.push(bestD, bestI, probeBuf);
      const steps = rowChunks.flatMap((rc, ri) =>
        dispatches(
          qc.rows,
          [qc.start, rc.start, rc.rows, m, ri === 0 ? 1 : 0, d4, nProbe],
          (params) => [params, qc.buf, rc.buf, bestD, bestI, probeBuf, startBuf, idBufs[ri]],
          searchPipe,
        ),
      );
      await gpu.run("ivf_search", steps);
      const [db, ib] = await gpu.readbackAll([
        { buffer: bestD, byteLength: qc.rows * m * 4 },
        { buffer: bestI, byteLength: qc.rows * m * 4 },
      ]);
      const dv = new Float32Array(db);
      const iv = new Uint32Array(ib);
      for (let r = 0; r < qc.rows; r++) {
        const q = qc.start + r;
        if (iv[r * m + m - 1] === UNFILLED) {
          exactQuery(p, L, q, top);
          emit(out, L.order[q], top.d, top.i, m);
        } else {
          emit(out, L.order[q], dv.subarray(r * m, r * m + m), iv.subarray(r * m, r * m + m), m);
        }
      }
    }
  } finally {
    for (const b of temp) b.destroy();
  }
  return out;
}
