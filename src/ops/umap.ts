/**
 * UMAP layout of a fuzzy neighbour graph on the CPU: scanpy's `tl.umap`, which calls umap-learn
 * 0.5's `simplicial_set_embedding` on `obsp['connectivities']` with a, b from `find_ab_params`.
 *
 * Steps, as umap-learn does them:
 * 1. prune: drop entries below max(weight) / nEpochs (below max / default epochs when nEpochs <= 10);
 * 2. init: spectral (spectral.ts: eigenvectors 2..3 of the normalized graph Laplacian; umap's
 *    multi-component layout for a disconnected graph), scaled by 10 / max|x| plus N(0, 1e-4) noise;
 *    or random uniform in [-10, 10]; then each coordinate rescaled to [0, 10];
 * 3. SGD, `optimize_layout_euclidean` with move_other = true: every directed edge i of the pruned
 *    graph is sampled once per epochs_per_sample[i] = max(w) / w_i epochs; an attractive step
 *    −2ab·d^(2(b−1)) / (1 + a·d^(2b)) · (x_j − x_k) moves both ends; then
 *    int((epoch − next_negative) / (epochs_per_sample / negativeSampleRate)) negative samples
 *    each push x_j by 2γb / ((0.001 + d²)(1 + a·d^(2b))) · (x_j − x_k); gradients clipped to ±4;
 *    learning rate α·(1 − epoch / nEpochs); γ = 1.
 *
 * Deliberate differences: umap draws negative samples from a shared Tausworthe stream (a race
 * when parallel); here sample p of edge i in epoch e is a hash of (seed, i, e, p) scaled to [0, n)
 * — a counter-based draw, so the sequential result is identical run after run and a GPU twin can
 * draw the same samples without shared state. Coordinates are float64 during optimisation (umap:
 * float32 with fastmath); d^b comes from a table plus a short series (relative error ~1e-11)
 * because Math.pow dominated the run time. Edges are visited in CSR order (umap: COO order of the
 * same matrix, also row-major); which edges are sampled in an epoch comes from a precomputed
 * schedule rather than a scan of every edge (same edges, same order). A disconnected graph gets umap's multi-component spectral layout
 * (see spectral.ts for where its anchors differ).
 */
import type { Csr } from "../core/csr.js";
import { Rng } from "../core/random.js";
import { spectralLayoutCpu } from "./spectral.js";
import { GpuError, type Gpu, type Step } from "../gpu/device.js";

export interface UmapOptions {
  minDist: number;
  spread: number;
  /** Default: 500 if n <= 10000 else 200 (umap-learn / scanpy). */
  nEpochs?: number;
  seed: number;
  init?: "spectral" | "random";
  negativeSampleRate?: number;
  learningRate?: number;
}

/**
 * umap-learn's find_ab_params: least-squares fit of 1 / (1 + a·x^(2b)) to the curve that is 1 for
 * x < minDist and exp(−(x − minDist) / spread) beyond, on 300 points of [0, 3·spread] (umap uses
 * scipy's curve_fit from a = b = 1; here Levenberg–Marquardt with the analytic Jacobian).
 */
export function findAbParams(spread: number, minDist: number): { a: number; b: number } {
  const m = 300;
  const x = new Float64Array(m);
  const y = new Float64Array(m);
  const step = (3 * spread) / (m - 1);
  for (let i = 0; i < m; i++) {
    x[i] = i === m - 1 ? 3 * spread : i * step;
    y[i] = x[i] < minDist ? 1 : Math.exp(-(x[i] - minDist) / spread);
  }
  const cost = (a: number, b: number) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += (1 / (1 + a * Math.pow(x[i], 2 * b)) - y[i]) ** 2;
    return s;
  };
  let a = 1;
  let b = 1;
  let c = cost(a, b);
  let lambda = 1e-3;
  for (let iter = 0; iter < 500; iter++) {
    // Normal equations JᵀJ δ = −Jᵀr of the residuals r_i = f(x_i) − y_i.
    let jaa = 0;
    let jab = 0;
    let jbb = 0;
    let ga = 0;
    let gb = 0;
    for (let i = 0; i < m; i++) {
      if (x[i] === 0) continue; // f = 1 and both derivatives vanish at x = 0
      const t = Math.pow(x[i], 2 * b);
      const g = 1 + a * t;
      const r = 1 / g - y[i];
      const da = -t / (g * g);
      const db = (-a * t * 2 * Math.log(x[i])) / (g * g);
      jaa += da * da;
      jab += da * db;
      jbb += db * db;
      ga += da * r;
      gb += db * r;
    }
    let accepted = false;
    while (lambda < 1e12) {
      const maa = jaa * (1 + lambda);
      const mbb = jbb * (1 + lambda);
      const det = maa * mbb - jab * jab;
      const dA = (-ga * mbb + gb * jab) / det;
      const dB = (-gb * maa + ga * jab) / det;
      const an = a + dA;
      const bn = b + dB;
      const cn = an > 0 && bn > 0 ? cost(an, bn) : Infinity;
      if (cn <= c) {
        const small = Math.abs(dA) <= 1e-13 * Math.abs(a) && Math.abs(dB) <= 1e-13 * Math.abs(b);
        a = an;
        b = bn;
        const flat = c - cn <= 1e-16 * c;
        c = cn;
        lambda = Math.max(lambda / 10, 1e-12);
        accepted = true;
        if (small || flat) return { a, b };
        break;
      }
      lambda *= 10;
    }
    if (!accepted) break;
  }
  return { a, b };
}

/** What both twins share before the epochs: pruned graph, a and b, initial layout, sampling rates. */
export interface UmapSetup {
  n: number;
  nEpochs: number;
  negativeRate: number;
  initialAlpha: number;
  a: number;
  b: number;
  /** Graph after pruning; its CSR order is the edge order (head = row, tail = column). */
  pruned: Csr;
  /** Initial coordinates, n × 2 row-major. */
  emb: Float64Array;
  /** umap's epochs_per_sample per edge of `pruned`. */
  epochsPerSample: Float64Array;
  /** Key of the negative-sample hash (see negativeBase), as a u32. */
  seedKey: number;
}

/** find_ab_params, pruning, the initial layout and make_epochs_per_sample, as umapLayoutCpu uses them. */
export function umapSetup(graph: Csr, opts: UmapOptions): UmapSetup {
  const dim = 2;
  const n = graph.nRows;
  const defaultEpochs = n <= 10000 ? 500 : 200;
  const nEpochs = opts.nEpochs ?? defaultEpochs;
  const { a, b } = findAbParams(opts.spread, opts.minDist);
  const rng = new Rng(opts.seed);
  const pruned = pruneGraph(graph, nEpochs > 10 ? nEpochs : defaultEpochs);
  const emb = initialLayout(pruned, dim, opts.init ?? "spectral", rng);
  const nEdges = pruned.indptr[n];
  let wMax = 0;
  for (let e = 0; e < nEdges; e++) wMax = Math.max(wMax, pruned.data[e]);
  // make_epochs_per_sample: n_epochs / (n_epochs · w / max w).
  const epochsPerSample = new Float64Array(nEdges);
  for (let e = 0; e < nEdges; e++) epochsPerSample[e] = nEpochs / (nEpochs * (pruned.data[e] / wMax));
  return {
    n,
    nEpochs,
    negativeRate: opts.negativeSampleRate ?? 5,
    initialAlpha: opts.learningRate ?? 1,
    a,
    b,
    pruned,
    emb,
    epochsPerSample,
    seedKey: fmix((opts.seed >>> 0) ^ 0x9e3779b9) >>> 0,
  };
}

/** Learning rate of each epoch: α at epoch 0, then α·(1 − (epoch − 1) / nEpochs), as the CPU loop updates it. */
export function epochAlphas(s: UmapSetup): Float64Array {
  const out = new Float64Array(s.nEpochs);
  for (let epoch = 0; epoch < s.nEpochs; epoch++) out[epoch] = epoch === 0 ? s.initialAlpha : s.initialAlpha * (1 - (epoch - 1) / s.nEpochs);
  return out;
}

/** UMAP embedding of `graph` (symmetric n × n connectivities): n × 2 row-major float32. */
export function umapLayoutCpu(graph: Csr, opts: UmapOptions): Float32Array {
  const { n, nEpochs, negativeRate, initialAlpha, a, b, pruned, emb, epochsPerSample, seedKey } = umapSetup(graph, opts);
  const gamma = 1;
  if (n === 0) return new Float32Array(0);

  // Edge ends in CSR order (head = row, tail = column) as offsets into emb; Int32 so that the hot
  // loop's index arithmetic stays in small integers.
  const nEdges = pruned.indptr[n];
  const head2 = new Int32Array(nEdges);
  for (let r = 0; r < n; r++) head2.fill(2 * r, pruned.indptr[r], pruned.indptr[r + 1]);
  const tail2 = Int32Array.from(pruned.indices, (k) => 2 * k);
  // epochs_per_negative_sample and epoch_of_next_negative_sample of each edge, side by side.
  const negative = new Float64Array(2 * nEdges);
  for (let e = 0; e < nEdges; e++) negative[2 * e] = negative[2 * e + 1] = epochsPerSample[e] / negativeRate;
  const schedule = new SampleSchedule(epochsPerSample, nEpochs);
  const toVertex = n / 4294967296;
  // x^b by table (see powTable), hoisted into locals for the hot loop.
  const { table: pow, c: powC } = powTable(b);
  const [c0, c1, c2, c3] = powC;
  const bits = new Float64Array(1);
  const bitsHi = new Uint32Array(bits.buffer, 4, 1);

  let alpha = initialAlpha;
  for (let epoch = 0; epoch < nEpochs; epoch++) {
    // Hash prefix of negativeBase that depends on the epoch only.
    const epochKey = Math.imul(epoch + 1, 0x9e3779b9);
    const { order, start } = schedule.epoch(epoch);
    const stop = start[epoch - schedule.first + 1];
    for (let q = start[epoch - schedule.first]; q < stop; q++) {
      const e = order[q];
      const j = head2[e];
      const k = tail2[e];
      let dx = emb[j] - emb[k];
      let dy = emb[j + 1] - emb[k + 1];
      let d2 = dx * dx + dy * dy;
      if (d2 > 0) {
        bits[0] = d2;
        const bin = (bitsHi[0] >>> (20 - POW_BITS)) - POW_LO;
        let pb: number;
        if (bin >>> 0 < POW_SIZE) {
          const t = d2 * pow[2 * bin + 1] - 1;
          pb = pow[2 * bin] * (1 + t * (c0 + t * (c1 + t * (c2 + t * c3))));
        } else pb = Math.pow(d2, b);
        const coeff = (-2 * a * b * (pb / d2)) / (a * pb + 1);
        let gx = coeff * dx;
        let gy = coeff * dy;
        gx = (gx > 4 ? 4 : gx < -4 ? -4 : gx) * alpha;
        gy = (gy > 4 ? 4 : gy < -4 ? -4 : gy) * alpha;
        emb[j] += gx;
        emb[j + 1] += gy;
        emb[k] -= gx;
        emb[k + 1] -= gy;
      }

      const epn = negative[2 * e];
      const nNeg = Math.floor((epoch - negative[2 * e + 1]) / epn);
      if (nNeg <= 0) continue;
      negative[2 * e + 1] += nNeg * epn;
      // negativeBase and negativeDraw inlined (same arithmetic); x_j is kept in locals while its
      // negative samples move it, and a draw of j itself is a no-op as in the plain loop (d² = 0).
      let h = seedKey ^ e;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      h ^= epochKey;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      const base = h ^ (h >>> 16);
      let xj = emb[j];
      let yj = emb[j + 1];
      for (let p = 0; p < nNeg; p++) {
        h = base + Math.imul(p + 1, 0x85ebca6b);
        h ^= h >>> 16;
        h = Math.imul(h, 0x85ebca6b);
        h ^= h >>> 13;
        h = Math.imul(h, 0xc2b2ae35);
        h ^= h >>> 16;
        let v = Math.floor((h >>> 0) * toVertex);
        if (v >= n) v = n - 1;
        const o = v * 2;
        if (o === j) continue;
        dx = xj - emb[o];
        dy = yj - emb[o + 1];
        d2 = dx * dx + dy * dy;
        if (d2 > 0) {
          bits[0] = d2;
          const bin = (bitsHi[0] >>> (20 - POW_BITS)) - POW_LO;
          let pb: number;
          if (bin >>> 0 < POW_SIZE) {
            const t = d2 * pow[2 * bin + 1] - 1;
            pb = pow[2 * bin] * (1 + t * (c0 + t * (c1 + t * (c2 + t * c3))));
          } else pb = Math.pow(d2, b);
          const coeff = (2 * gamma * b) / ((0.001 + d2) * (a * pb + 1));
          const gx = coeff * dx;
          const gy = coeff * dy;
          xj += (gx > 4 ? 4 : gx < -4 ? -4 : gx) * alpha;
          yj += (gy > 4 ? 4 : gy < -4 ? -4 : gy) * alpha;
        } else {
          // Coincident with another point: umap 0.5.3 pushes by the clip value.
          xj += 4 * alpha;
          yj += 4 * alpha;
        }
      }
      emb[j] = xj;
      emb[j + 1] = yj;
    }
    alpha = initialAlpha * (1 - epoch / nEpochs);
  }
  return Float32Array.from(emb);
}

// Edge samples listed per block of epochs: up to this many (edge, epoch) slots at a time.
const SCHEDULE_SLOTS = 1 << 20;

/**
 * Which edges take a positive sample in each epoch, in ascending edge order: the edges with
 * nextSample <= epoch of umap's loop, without scanning every edge every epoch. The schedule
 * depends on epochs_per_sample only, and nextSample accumulates exactly as in that loop
 * (nextSample += epochs_per_sample at each sample), so the same edges fire in the same epochs.
 * Built for a block of epochs at a time (counting sort by epoch) to bound its memory.
 */
class SampleSchedule {
  /** First epoch of the current block; start[t − first] .. start[t − first + 1] index `order`. */
  first = 0;
  private last = 0;
  private readonly nextSample: Float64Array;
  /** Epoch of each edge's next sample: the least integer epoch >= nextSample. */
  private readonly nextEpoch: Float64Array;
  private readonly span: number;
  readonly order: Uint32Array;
  readonly start: Uint32Array;

  constructor(
    private readonly epochsPerSample: Float64Array,
    private readonly nEpochs: number,
  ) {
    const nEdges = epochsPerSample.length;
    this.nextSample = Float64Array.from(epochsPerSample);
    this.nextEpoch = Float64Array.from(epochsPerSample, (v) => Math.max(0, Math.ceil(v)));
    this.span = Math.max(1, Math.min(nEpochs, Math.floor(SCHEDULE_SLOTS / Math.max(1, nEdges))));
    this.order = new Uint32Array(nEdges * this.span);
    this.start = new Uint32Array(this.span + 1);
  }

  /** The block holding `epoch` (epochs are asked for in increasing order). */
  epoch(epoch: number): { order: Uint32Array; start: Uint32Array } {
    if (epoch >= this.last) this.build(epoch, Math.min(this.nEpochs, epoch + this.span));
    return this;
  }

  private build(first: number, last: number): void {
    const { nextSample, nextEpoch, epochsPerSample, order, start } = this;
    const nEdges = epochsPerSample.length;
    start.fill(0);
    // Pass 1 counts the samples of each epoch, pass 2 places them (edges ascending) and advances.
    for (let e = 0; e < nEdges; e++) {
      let at = nextSample[e];
      for (let t = nextEpoch[e]; t < last; ) {
        start[t - first + 1]++;
        at += epochsPerSample[e];
        t = Math.max(t + 1, Math.ceil(at));
      }
    }
    for (let t = 1; t <= last - first; t++) start[t] += start[t - 1];
    const fill = start.slice(0, last - first);
    for (let e = 0; e < nEdges; e++) {
      let at = nextSample[e];
      let t = nextEpoch[e];
      while (t < last) {
        order[fill[t - first]++] = e;
        at += epochsPerSample[e];
        t = Math.max(t + 1, Math.ceil(at));
      }
      nextSample[e] = at;
      nextEpoch[e] = t;
    }
    this.first = first;
    this.last = last;
  }
}

/** Keep entries >= max / epochs (umap zeroes the smaller ones and eliminates zeros). */
function pruneGraph(graph: Csr, epochs: number): Csr {
  const n = graph.nRows;
  const nnz = graph.indptr[n];
  let max = 0;
  for (let k = 0; k < nnz; k++) max = Math.max(max, graph.data[k]);
  const threshold = max / epochs;
  const indptr = new Float64Array(n + 1);
  let kept = 0;
  for (let k = 0; k < nnz; k++) if (graph.data[k] >= threshold && graph.data[k] > 0) kept++;
  const indices = new Uint32Array(kept);
  const data = new Float32Array(kept);
  let o = 0;
  for (let r = 0; r < n; r++) {
    const end = graph.indptr[r + 1];
    for (let k = graph.indptr[r]; k < end; k++) {
      const v = graph.data[k];
      if (v >= threshold && v > 0) {
        indices[o] = graph.indices[k];
        data[o++] = v;
      }
    }
    indptr[r + 1] = o;
  }
  return { nRows: n, nCols: graph.nCols, indptr, indices, data };
}

/** umap's initial coordinates, rescaled per dimension to [0, 10] as simplicial_set_embedding does. */
function initialLayout(graph: Csr, dim: number, init: "spectral" | "random", rng: Rng): Float64Array {
  const n = graph.nRows;
  let emb: Float64Array;
  if (init === "random") {
    emb = new Float64Array(n * dim);
    for (let t = 0; t < emb.length; t++) emb[t] = rng.nextFloat() * 20 - 10;
  } else {
    emb = spectralLayoutCpu(graph, dim, rng);
    let maxAbs = 0;
    for (let t = 0; t < emb.length; t++) maxAbs = Math.max(maxAbs, Math.abs(emb[t]));
    const expansion = maxAbs > 0 ? 10 / maxAbs : 1;
    // Tiny noise so that no two points start exactly together.
    for (let t = 0; t < emb.length; t++) emb[t] = emb[t] * expansion + 1e-4 * rng.normal();
  }
  for (let d = 0; d < dim; d++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      lo = Math.min(lo, emb[i * dim + d]);
      hi = Math.max(hi, emb[i * dim + d]);
    }
    const s = hi > lo ? 10 / (hi - lo) : 0;
    for (let i = 0; i < n; i++) emb[i * dim + d] = (emb[i * dim + d] - lo) * s;
  }
  return emb;
}

interface PowTable {
  /** Per bin: x_start^b, then 1 / x_start. */
  table: Float64Array;
  c: Float64Array;
}

// Scratch for reading a float64's bits.
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const POW_BITS = 6; // mantissa bits per table bin: 64 bins per octave
const POW_LO = (1023 - 64) << POW_BITS; // table covers 2^-64 .. 2^64
const POW_SIZE = 128 << POW_BITS;

/**
 * Table for x^b, x > 0, without Math.pow (which costs ~10x more in V8 and dominated the SGD):
 * the value at the start of x's bin (exponent + top 6 mantissa bits) times a 4-term binomial
 * series in t = x / start − 1 < 2^-6; relative error ~1e-11 for UMAP's usual b (0.5–2). Outside
 * 2^±64 the SGD loop falls back to Math.pow.
 */
function powTable(b: number): PowTable {
  const table = new Float64Array(2 * POW_SIZE);
  for (let i = 0; i < POW_SIZE; i++) {
    u32[0] = 0;
    u32[1] = (POW_LO + i) << (20 - POW_BITS);
    table[2 * i] = Math.pow(f64[0], b);
    table[2 * i + 1] = 1 / f64[0];
  }
  const c = new Float64Array(4);
  c[0] = b;
  for (let k = 1; k < 4; k++) c[k] = (c[k - 1] * (b - k)) / (k + 1);
  return { table, c };
}

/**
 * Negative samples are a counter-based hash: draw p of edge e in epoch `epoch` is
 * fmix(fmix(fmix(seedKey ^ e) ^ epoch·φ) + (p + 1)·c), mapped to a vertex by multiply-and-floor.
 * umapLayoutCpu inlines both functions (same arithmetic); the GPU twin's tests call them.
 */
export function negativeBase(seedKey: number, e: number, epoch: number): number {
  return fmix(fmix(seedKey ^ e) ^ Math.imul(epoch + 1, 0x9e3779b9));
}

export function negativeDraw(base: number, p: number): number {
  return fmix(base + Math.imul(p + 1, 0x85ebca6b));
}

/** murmur3's 32-bit finaliser. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

const EPOCHS_PER_SUBMIT = 100;

/** What umapLayoutGpu reports about its run when asked. */
export interface UmapGpuStats {
  /** Vertex ranges dispatched separately each epoch so every binding fits maxStorageBufferBindingSize. */
  chunks: number;
}

/** A vertex range of the GPU layout: its out-edges (its CSR rows) and in-edge entries. */
interface UmapChunk {
  vStart: number;
  vEnd: number;
  edgeStart: number;
  edgeEnd: number;
  inStart: number;
  inEnd: number;
}

/**
 * Consecutive vertex ranges whose per-edge arrays (at most 8 bytes an edge), per-vertex pointers
 * (12 bytes a vertex + 8) stay within `limit` bytes each. A range never splits a vertex (the
 * kernel carries its position through all its edges); one vertex alone fits whenever n
 * positions do, as its degrees are at most n, barring duplicate entries in a row.
 */
function umapChunks(indptr: Float64Array, inPtr: Uint32Array, n: number, limit: number): UmapChunk[] {
  const maxEdges = Math.floor(limit / 8);
  const maxVertices = Math.floor((limit / 4 - 2) / 3);
  const chunks: UmapChunk[] = [];
  let v = 0;
  while (v < n) {
    const start = v;
    const fits = (end: number) =>
      end - start <= maxVertices && indptr[end] - indptr[start] <= maxEdges && inPtr[end] - inPtr[start] <= maxEdges;
    if (!fits(v + 1)) throw new GpuError(`umap: vertex ${v}'s edges exceed one ${limit}-byte binding`);
    while (v < n && fits(v + 1)) v++;
    chunks.push({ vStart: start, vEnd: v, edgeStart: indptr[start], edgeEnd: indptr[v], inStart: inPtr[start], inEnd: inPtr[v] });
  }
  return chunks;
}

/**
 * GPU twin of umapLayoutCpu (kernels/umap_sgd.wgsl). The host does what is small and shared with
 * the CPU twin, by the same code (umapSetup: a, b, pruning, spectral or random init, sampling
 * rates); the epochs run on the device, one invocation per vertex that gathers the steps of every
 * edge touching it and the negative samples of its own edges (same hash, so the same sampled
 * vertices as the CPU). Other vertices' positions are read from the epoch's starting snapshot
 * (Jacobi across vertices, Gauss-Seidel within one; see the kernel header), so there are no races
 * and the same input and seed give the same bytes. Vertices are split into ranges whose edge
 * arrays fit maxStorageBufferBindingSize (one dispatch per range per epoch; any number of edges,
 * only the n positions must fit one binding); as vertices are independent within an epoch, the
 * split does not change the bytes. Float32 coordinates and schedule (CPU: float64); compare
 * layouts by trustworthiness, not coordinates. `stats`, if given, receives the number of ranges.
 */
export async function umapLayoutGpu(gpu: Gpu, graph: Csr, opts: UmapOptions, stats?: UmapGpuStats): Promise<Float32Array> {
  const s = umapSetup(graph, opts);
  const { n, nEpochs, pruned } = s;
  if (n === 0) return new Float32Array(0);
  const nEdges = pruned.indptr[n];
  const limit = gpu.limits.maxStorageBufferBindingSize;
  if (n * 8 > limit) throw new GpuError(`umap: ${n} vertices' positions exceed one ${limit}-byte binding`);
  // In-edge entries (head, bits of epochs_per_sample) grouped by tail, ascending head within a
  // tail; self-loops make no in-step and are left out. Each tail keeps its own copy of the edge's
  // next-sample epoch, so it never reads a schedule that another chunk owns.
  const rate = new Float32Array(2 * nEdges);
  for (let e = 0; e < nEdges; e++) {
    rate[2 * e] = s.epochsPerSample[e];
    rate[2 * e + 1] = s.epochsPerSample[e] / s.negativeRate;
  }
  const rateBits = new Uint32Array(rate.buffer);
  const inPtr = new Uint32Array(n + 1);
  for (let r = 0; r < n; r++) {
    for (let e = pruned.indptr[r]; e < pruned.indptr[r + 1]; e++) if (pruned.indices[e] !== r) inPtr[pruned.indices[e] + 1]++;
  }
  for (let r = 0; r < n; r++) inPtr[r + 1] += inPtr[r];
  const fill = inPtr.slice(0, n);
  const inList = new Uint32Array(2 * inPtr[n]);
  const inSched = new Float32Array(inPtr[n]);
  for (let r = 0; r < n; r++) {
    for (let e = pruned.indptr[r]; e < pruned.indptr[r + 1]; e++) {
      const k = pruned.indices[e];
      if (k === r) continue;
      const q = fill[k]++;
      inList[2 * q] = r;
      inList[2 * q + 1] = rateBits[2 * e];
      inSched[q] = rate[2 * e];
    }
  }
  const chunks = umapChunks(pruned.indptr, inPtr, n, limit);
  if (stats) stats.chunks = chunks.length;

  const code = (await import("../../kernels/umap_sgd.wgsl")).default;
  const pipeline = await gpu.pipeline(code, "umap_epoch");
  const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const buffers: GPUBuffer[] = [];
  const keep = (b: GPUBuffer) => (buffers.push(b), b);
  try {
    const pos = [keep(gpu.upload(Float32Array.from(s.emb), "umap.posA", rw)), keep(gpu.createBuffer(n * 8, rw, "umap.posB"))];
    const params = keep(gpu.uniforms({ u32: [n, s.seedKey, 0, 0], f32: [s.a, s.b, 1, 0] }, "umap.params"));
    const alphas = epochAlphas(s);
    const epochBufs = Array.from({ length: nEpochs }, (_, epoch) => keep(gpu.uniforms({ u32: [epoch], f32: [alphas[epoch]] }, "umap.epoch")));
    const perChunk = chunks.map((c) => {
      const m = c.vEnd - c.vStart;
      // Local row and in-edge pointers, then the chunk's vertices by degree, so lanes run in
      // lockstep have similar loop counts (a quarter less time on lavapipe); vertices are
      // independent within an epoch, so the order does not change the result.
      const ptrs = new Uint32Array(3 * m + 2);
      for (let l = 0; l <= m; l++) {
        ptrs[l] = pruned.indptr[c.vStart + l] - c.edgeStart;
        ptrs[m + 1 + l] = inPtr[c.vStart + l] - c.inStart;
      }
      const degree = (l: number) => ptrs[l + 1] - ptrs[l] + ptrs[m + 2 + l] - ptrs[m + 1 + l];
      const order = Array.from({ length: m }, (_, l) => l).sort((u, v) => degree(u) - degree(v) || u - v);
      for (let i = 0; i < m; i++) ptrs[2 * m + 2 + i] = c.vStart + order[i];
      const edgeRate = rate.subarray(2 * c.edgeStart, 2 * c.edgeEnd);
      return {
        workgroups: Math.ceil(m / 64),
        chunk: keep(gpu.uniforms({ u32: [c.vStart, m, c.edgeStart, 0] }, "umap.chunk")),
        sched: keep(gpu.upload(edgeRate, "umap.sched")),
        rate: keep(gpu.upload(edgeRate, "umap.rate")),
        tail: keep(gpu.upload(pruned.indices.subarray(c.edgeStart, c.edgeEnd), "umap.tail")),
        ptrs: keep(gpu.upload(ptrs, "umap.ptrs")),
        inList: keep(gpu.upload(inList.subarray(2 * c.inStart, 2 * c.inEnd), "umap.inList")),
        inSched: keep(gpu.upload(inSched.subarray(c.inStart, c.inEnd), "umap.inSched")),
      };
    });
    // 100 epochs per submission: on lavapipe 1 or 10 per submission measured slower, all 500 in
    // one no faster, and shorter submissions keep a hardware GPU's watchdog away on big graphs.
    for (let start = 0; start < nEpochs; start += EPOCHS_PER_SUBMIT) {
      const steps: Step[] = [];
      for (let epoch = start; epoch < Math.min(nEpochs, start + EPOCHS_PER_SUBMIT); epoch++) {
        const i = epoch % 2;
        for (const c of perChunk) {
          steps.push({
            pipeline,
            bindings: [params, epochBufs[epoch], c.chunk, pos[i], pos[1 - i], c.sched, c.rate, c.tail, c.ptrs, c.inList, c.inSched],
            workgroups: c.workgroups,
          });
        }
      }
      await gpu.run("umap_epoch", steps);
    }
    return new Float32Array(await gpu.readback(pos[nEpochs % 2], n * 8));
  } finally {
    for (const b of buffers) b.destroy();
  }
}
