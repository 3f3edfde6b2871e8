/**
 * Highly variable genes, as scanpy's pp.highly_variable_genes(n_top_genes=…) computes them on
 * one batch (scanpy ≥ 1.10, src/scanpy/preprocessing/_highly_variable_genes.py):
 *
 * - "seurat" (on the log matrix): expm1, per-gene mean and variance (ddof 1); mean 0 → 1e-12;
 *   dispersion = log(var/mean) (NaN where var = 0); mean = log1p(mean); pd.cut(mean, nBins)
 *   equal-width bins; per bin mean and std (ddof 1) of the non-NaN dispersions; a bin with a
 *   single dispersion gets avg 0, dev = its value (so it normalizes to 1);
 *   dispersions_norm = (disp − avg)/dev; HVG = dispersions_norm ≥ the nTopGenes-th highest.
 * - "cell_ranger" (on the log matrix): no expm1/log; dispersion = var/mean; bins cut at
 *   [−∞, percentiles 10,15,…,100 of the means, ∞]; normalized by bin median and MAD
 *   (statsmodels' mad: median |x − median| / Φ⁻¹(3/4)).
 * - "seurat_v3" (on counts): loess (span 0.3, degree 2) of log10 var on log10 mean over the
 *   non-constant genes; regularized std σ_j = sqrt(10^fit); variance of the values clipped at
 *   mean + σ_j·sqrt(n), standardized by σ_j (ddof 1); rank by it; top nTopGenes are HVG.
 *   The loess is the netlib/R algorithm with its default surface="interpolate": exact local
 *   fits at the vertices of a 1-D kd-tree (cells of ≤ floor(n·span·0.2) points), cubic Hermite
 *   interpolation in between, tricube weights over the q = floor(n·span) nearest points.
 *   Deliberate difference: netlib's pseudo-inverse tolerance and its tiny boundary fudge on
 *   the weights are not reproduced (effects far below the HVG ranking resolution).
 *   dispersions/dispersionsNorm are NaN for this flavor (scanpy does not compute them).
 *
 * Sums are float64; the seurat flavor's expm1 is rounded to float32 as numpy does on float32.
 */
import type { Csr } from "../core/csr.js";
import type { Gpu } from "../gpu/device.js";
import { csrChunks, destroyCsrChunk, uploadCsrChunk } from "../gpu/chunking.js";
import { FeatureMoments, featureMomentsCpu, featureMomentsGpu, momentBlocks, reduceBlocksStep } from "./normalize.js";

export type HvgFlavor = "seurat" | "cell_ranger" | "seurat_v3";

export interface HvgResult {
  highlyVariable: Uint8Array;
  means: Float64Array;
  dispersions: Float64Array;
  dispersionsNorm: Float64Array;
  variances?: Float64Array;
  variancesNorm?: Float64Array;
  highlyVariableRank?: Float64Array; // seurat_v3 (NaN when not HVG)
  meanBin?: Int32Array;
}

export interface HvgInput {
  logNorm: Csr;
  counts: Csr;
  /** Per-gene mean and variance (ddof 1) of the values the flavor bins on, if already computed. */
  moments?: { mean: Float64Array; variance: Float64Array };
}

export interface HvgOptions {
  flavor: HvgFlavor;
  nTopGenes: number;
  nBins?: number;
}

/**
 * GPU twin: the passes over the matrix run on the device (kernels/moments.wgsl); binning, the
 * loess and ranking of the per-gene values stay on the CPU. seurat_v3: Σx and Σx² of the counts
 * (clippedSumsGpu without clip) → mean and variance as FeatureMoments forms them, host loess →
 * clip values, clippedSumsGpu again. With fewer than two cells or no genes there is nothing to
 * reduce and seurat_v3 runs on the CPU (onGpu false).
 */
export async function highlyVariableGenesGpu(gpu: Gpu, input: HvgInput, opts: HvgOptions): Promise<{ result: HvgResult; onGpu: boolean }> {
  if (opts.flavor === "seurat_v3") {
    const C = input.counts;
    const n = C.nRows;
    if (n < 2 || C.nCols === 0) return { result: highlyVariableGenesCpu(input, opts), onGpu: false };
    const plain = await clippedSumsGpu(gpu, C);
    const mean = Float64Array.from(plain.sum, (s) => s / n);
    const variance = Float64Array.from(mean, (m, j) => Math.max(0, (plain.sumSq[j] - n * m * m) / (n - 1)));
    const moments = { mean, variance };
    const { regStd, clipVal } = seuratV3Clip(n, moments);
    const clipped = await clippedSumsGpu(gpu, C, clipVal);
    return { result: seuratV3Select(n, moments, regStd, clipped.sum, clipped.sumSq, opts.nTopGenes), onGpu: true };
  }
  const X = input.logNorm;
  const values = opts.flavor === "seurat" ? X.data.map((v) => Math.expm1(v)) : X.data;
  const moments = await featureMomentsGpu(gpu, { ...X, data: values });
  return { result: highlyVariableGenesCpu({ ...input, moments }, opts), onGpu: true };
}

/**
 * Per-gene Σ min(x, clip_j) and Σ min(x, clip_j)² over the nonzeros (no clip: Σx, Σx²), two
 * fixed-order device passes (block partials in storage order, reduced over blocks in order, summed
 * over row chunks in float64) over the entries below the clip, plus their count of clipped entries;
 * the host adds count·clip_j (and ·clip_j²) in float64. The sums are unshifted float32 partials:
 * integer counts then sum exactly while a gene's total stays below 2^24, so genes with the same
 * values tie exactly as on the CPU, whose float64 sums are exact too. (Σx² − n·mean² cancels only
 * where mean² ≫ variance, which raw counts, variance ≳ mean, do not reach.) The comparison uses
 * clip_j rounded up to float32, which for float32 x is the same test x ≥ clip_j as in float64.
 */
export async function clippedSumsGpu(gpu: Gpu, X: Csr, clip?: Float64Array): Promise<{ sum: Float64Array; sumSq: Float64Array }> {
  const code = (await import("../../kernels/moments.wgsl")).default;
  const [sumsPipe, sqPipe, reducePipe] = await Promise.all(
    ["block_clipped_sums", "block_clipped_sq", "reduce_blocks"].map((e) => gpu.pipeline(code, e)),
  );
  const p = X.nCols;
  const sum = new Float64Array(p);
  const sumSq = new Float64Array(p);
  if (p === 0) return { sum, sumSq };
  // No clip: the largest float32, so min(x, clip) = x for every finite x.
  const clip32 = clip ? Float32Array.from(clip, roundUpF32) : new Float32Array(p).fill(F32_MAX);
  const nClipped = new Float64Array(p);
  const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const temp: GPUBuffer[] = [];
  const keep = (b: GPUBuffer): GPUBuffer => (temp.push(b), b);
  try {
    const outSum = keep(gpu.createBuffer(p * 4, rw, "clipped.sum"));
    const outCount = keep(gpu.createBuffer(p * 4, rw, "clipped.count"));
    const clipBuf = keep(gpu.upload(clip32, "clipped.clip"));
    for (const chunk of csrChunks(gpu, X)) {
      const m = uploadCsrChunk(gpu, X, chunk);
      try {
        const b = momentBlocks(gpu, m.nRows, p, "clippedSumsGpu");
        const { params, partial, count, workgroups } = b;
        for (const x of [params, partial, count]) keep(x);
        const csr = [params, m.indptr, m.indices, m.data];
        const reduce = reduceBlocksStep(reducePipe, b, outSum, outCount, p);
        await gpu.run("clipped.sums", [{ clear: partial }, { clear: count }, { pipeline: sumsPipe, bindings: [...csr, , partial, count, , , clipBuf], workgroups }, reduce]);
        const [s, c] = await gpu.readbackAll([{ buffer: outSum, byteLength: p * 4 }, { buffer: outCount, byteLength: p * 4 }]);
        const sv = new Float32Array(s);
        const cv = new Uint32Array(c);
        await gpu.run("clipped.sq", [{ clear: partial }, { pipeline: sqPipe, bindings: [...csr, , partial, , , , clipBuf], workgroups }, reduce]);
        const qv = new Float32Array(await gpu.readback(outSum, p * 4));
        for (let j = 0; j < p; j++) {
          sum[j] += sv[j];
          sumSq[j] += qv[j];
          nClipped[j] += cv[j];
        }
      } finally {
        destroyCsrChunk(m);
      }
    }
  } finally {
    for (const b of temp) b.destroy();
  }
  for (let j = 0; j < p; j++) {
    if (nClipped[j] === 0) continue;
    const v = clip ? clip[j] : F32_MAX;
    sum[j] += nClipped[j] * v;
    sumSq[j] += nClipped[j] * v * v;
  }
  return { sum, sumSq };
}

const F32_MAX = 3.4028234663852886e38;

/** The smallest float32 ≥ v (v itself when representable). */
function roundUpF32(v: number): number {
  const f = Math.fround(v);
  if (!(f < v)) return f;
  const b = new Float32Array([f]);
  const u = new Uint32Array(b.buffer);
  if (f === 0) u[0] = 1; // the smallest positive subnormal
  else if (f > 0) u[0]++;
  else u[0]--;
  return b[0];
}

export function highlyVariableGenesCpu(input: HvgInput, opts: HvgOptions): HvgResult {
  if (opts.flavor === "seurat_v3") return seuratV3Blocks(input.counts.nRows, input.counts.nCols, () => [input.counts], opts.nTopGenes);
  const X = input.logNorm;
  return hvgFromMoments(input.moments ?? featureMomentsCpu(X, hvgMomentsTransform(opts.flavor)), opts);
}

/** The values the seurat flavor takes moments of: expm1 of the log values, in float32 as scanpy. */
export function hvgMomentsTransform(flavor: HvgFlavor): ((v: number) => number) | undefined {
  return flavor === "seurat" ? (v) => Math.fround(Math.expm1(v)) : undefined;
}

/** seurat / cell_ranger selection from per-gene moments (see hvgMomentsTransform for which values). */
export function hvgFromMoments(moments: { mean: Float64Array; variance: Float64Array }, opts: HvgOptions): HvgResult {
  if (opts.flavor !== "seurat" && opts.flavor !== "cell_ranger") throw new Error(`unknown HVG flavor ${String(opts.flavor)}`);
  const { mean, variance } = moments;
  const p = mean.length;
  const means = new Float64Array(p);
  const dispersions = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const m = mean[j] === 0 ? 1e-12 : mean[j];
    let d = variance[j] / m;
    if (opts.flavor === "seurat") {
      d = d === 0 ? NaN : Math.log(d);
      means[j] = Math.log1p(m);
    } else {
      means[j] = m;
    }
    dispersions[j] = d;
  }
  const meanBin = opts.flavor === "seurat" ? equalWidthBins(means, opts.nBins ?? 20) : percentileBins(means);
  const nBinsUsed = Math.max(0, ...meanBin) + 1;
  const avg = new Float64Array(nBinsUsed).fill(NaN);
  const dev = new Float64Array(nBinsUsed).fill(NaN);
  const members: number[][] = Array.from({ length: nBinsUsed }, () => []);
  for (let j = 0; j < p; j++) if (meanBin[j] >= 0 && !Number.isNaN(dispersions[j])) members[meanBin[j]].push(dispersions[j]);
  for (let b = 0; b < nBinsUsed; b++) {
    const v = members[b];
    if (v.length === 0) continue;
    if (opts.flavor === "seurat") {
      let s = 0;
      for (const x of v) s += x;
      const mu = s / v.length;
      let ss = 0;
      for (const x of v) ss += (x - mu) * (x - mu);
      if (v.length === 1) {
        avg[b] = 0; // single-gene bin: scanpy sets dev = avg, avg = 0
        dev[b] = mu;
      } else {
        avg[b] = mu;
        dev[b] = Math.sqrt(ss / (v.length - 1));
      }
    } else {
      const med = median(v);
      avg[b] = med;
      dev[b] = median(v.map((x) => Math.abs(x - med))) / 0.6744897501960817;
    }
  }
  const dispersionsNorm = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const b = meanBin[j];
    dispersionsNorm[j] = b < 0 ? NaN : (dispersions[j] - avg[b]) / dev[b];
  }
  // _nth_highest over the non-NaN values; ties at the cut-off are all kept, as in scanpy.
  const finite = Array.from(dispersionsNorm).filter((x) => !Number.isNaN(x)).sort((a, b) => b - a);
  const nTop = Math.min(opts.nTopGenes, p, finite.length);
  const cut = nTop > 0 ? finite[nTop - 1] : Infinity;
  const highlyVariable = Uint8Array.from(dispersionsNorm, (x) => (!Number.isNaN(x) && x >= cut ? 1 : 0));
  return { highlyVariable, means, dispersions, dispersionsNorm, meanBin };
}

/** pd.cut(x, nBins): equal-width right-closed bins over [min, max], lowest edge lowered by 0.1 %. */
function equalWidthBins(x: Float64Array, nBins: number): Int32Array {
  let mn = Infinity;
  let mx = -Infinity;
  for (const v of x) {
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const out = new Int32Array(x.length);
  if (!(mx > mn)) return out; // pandas widens a constant range; every value falls in one bin
  const edges = new Float64Array(nBins + 1);
  const step = (mx - mn) / nBins; // np.linspace: i·step + start, last edge exactly max
  for (let i = 0; i < nBins; i++) edges[i] = i * step + mn;
  edges[nBins] = mx;
  edges[0] -= (mx - mn) * 0.001;
  for (let j = 0; j < x.length; j++) out[j] = searchLeft(edges, x[j]) - 1;
  return out;
}

/** scanpy's cell_ranger bins: pd.cut(x, [−∞, np.percentile(x, 10…100 step 5), ∞]). */
function percentileBins(x: Float64Array): Int32Array {
  const sorted = Float64Array.from(x).sort();
  const edges: number[] = [-Infinity];
  for (let q = 10; q <= 100; q += 5) edges.push(percentileLinear(sorted, q));
  edges.push(Infinity);
  const e = Float64Array.from(edges);
  return Int32Array.from(x, (v) => searchLeft(e, v) - 1);
}

/** numpy.percentile (linear), including numpy's _lerp form. */
function percentileLinear(sorted: Float64Array, q: number): number {
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const t = pos - lo;
  const a = sorted[lo];
  const b = sorted[hi];
  const diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/** First index i with edges[i] ≥ v (numpy searchsorted side='left'); NaN → past the end. */
function searchLeft(edges: Float64Array, v: number): number {
  if (Number.isNaN(v)) return 0; // label −1: no bin
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function median(v: number[]): number {
  const s = Float64Array.from(v).sort();
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * seurat_v3 over count row blocks given in order (each call of `blocks` yields them all again):
 * two passes, moments then clipped sums, the same sums in the same order as over the whole matrix.
 */
export function seuratV3Blocks(n: number, p: number, blocks: () => Iterable<Csr>, nTopGenes: number): HvgResult {
  const moments = new FeatureMoments(p);
  for (const b of blocks()) moments.add(b);
  const m = moments.result();
  const { regStd, clipVal } = seuratV3Clip(n, m);
  const sum = new Float64Array(p);
  const sumSq = new Float64Array(p);
  for (const counts of blocks()) {
    const nnz = counts.indptr[counts.nRows];
    for (let t = 0; t < nnz; t++) {
      const j = counts.indices[t];
      const v = Math.min(counts.data[t], clipVal[j]);
      sum[j] += v;
      sumSq[j] += v * v;
    }
  }
  return seuratV3Select(n, m, regStd, sum, sumSq, nTopGenes);
}

/**
 * The host part of seurat_v3 between the passes: loess of log10 variance on log10 mean over the
 * non-constant genes → regularized std σ_j, and the clip value mean_j + sqrt(n)·σ_j.
 */
function seuratV3Clip(n: number, moments: { mean: Float64Array; variance: Float64Array }): { regStd: Float64Array; clipVal: Float64Array } {
  const { mean, variance } = moments;
  const p = mean.length;
  const idx: number[] = [];
  for (let j = 0; j < p; j++) if (variance[j] > 0) idx.push(j);
  const fit = loessInterpolate(
    Float64Array.from(idx, (j) => Math.log10(mean[j])),
    Float64Array.from(idx, (j) => Math.log10(variance[j])),
    0.3,
  );
  const regStd = new Float64Array(p).fill(1); // constant genes: estimate 0 → σ = 1, as scanpy
  idx.forEach((j, t) => (regStd[j] = Math.sqrt(10 ** fit[t])));
  const vmax = Math.sqrt(n);
  const clipVal = Float64Array.from(regStd, (s, j) => s * vmax + mean[j]);
  return { regStd, clipVal };
}

/** seurat_v3 ranking from the per-gene sums of the clipped counts over their nonzeros. */
function seuratV3Select(
  n: number,
  moments: { mean: Float64Array; variance: Float64Array },
  regStd: Float64Array,
  sum: Float64Array,
  sumSq: Float64Array,
  nTopGenes: number,
): HvgResult {
  const { mean, variance } = moments;
  const p = mean.length;
  const variancesNorm = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    variancesNorm[j] = (n * mean[j] * mean[j] + sumSq[j] - 2 * sum[j] * mean[j]) / ((n - 1) * regStd[j] * regStd[j]);
  }
  // Rank by normalized variance, descending; ties by gene order (a stable argsort).
  const order = Array.from({ length: p }, (_, j) => j).sort((a, b) => variancesNorm[b] - variancesNorm[a] || a - b);
  const nTop = Math.min(nTopGenes, p);
  const highlyVariable = new Uint8Array(p);
  const highlyVariableRank = new Float64Array(p).fill(NaN);
  for (let r = 0; r < nTop; r++) {
    highlyVariable[order[r]] = 1;
    highlyVariableRank[order[r]] = r;
  }
  return {
    highlyVariable,
    means: mean,
    dispersions: new Float64Array(p).fill(NaN),
    dispersionsNorm: new Float64Array(p).fill(NaN),
    variances: variance,
    variancesNorm,
    highlyVariableRank,
  };
}

/**
 * 1-D loess (degree 2, gaussian family) fitted values at the data points, with netlib's
 * interpolation surface: kd-tree over x split at the median until a cell has ≤ fc points,
 * exact local fits (value and slope) at the cell vertices, cubic Hermite in between.
 */
export function loessInterpolate(x: Float64Array, y: Float64Array, span: number, cell = 0.2): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b] || a - b);
  const xs = Float64Array.from(order, (i) => x[i]);
  const q = Math.max(1, Math.min(n, Math.floor(n * span)));
  const fc = Math.floor(n * span * cell);
  // Bounding box widened by 0.5 % as netlib's ehg126.
  const lo = xs[0];
  const hi = xs[n - 1];
  const margin = 0.005 * Math.max(hi - lo, 1e-10 * Math.max(Math.abs(lo), Math.abs(hi)) + 1e-30);
  const vertices: number[] = [lo - margin, hi + margin];
  const split = (l: number, u: number, vLo: number, vHi: number): void => {
    if (u - l + 1 <= fc) return;
    let m = (l + u) >> 1;
    // Move the split off runs of equal x (netlib's 2006 fix): try m, m+1, m−1, m+2, …
    for (let off = 0; ; off = off > 0 ? -off : -off + 1) {
      const mm = m + off;
      if (mm >= u || mm < l) break;
      if (xs[mm] !== xs[mm + 1]) {
        m = mm;
        break;
      }
    }
    const v = (xs[m] + xs[m + 1]) / 2;
    if (v === vLo || v === vHi) return;
    vertices.push(v);
    split(l, m, vLo, v);
    split(m + 1, u, v, vHi);
  };
  split(0, n - 1, vertices[0], vertices[1]);
  const vs = Float64Array.from(vertices).sort();
  const val = new Float64Array(vs.length);
  const slope = new Float64Array(vs.length);
  const dist = new Float64Array(n);
  for (let t = 0; t < vs.length; t++) {
    const v = vs[t];
    for (let i = 0; i < n; i++) dist[i] = Math.abs(xs[i] - v);
    const h = quickSelect(Float64Array.from(dist), q - 1);
    [val[t], slope[t]] = localQuadratic(xs, y, order, dist, v, h);
  }
  const out = new Float64Array(n);
  let c = 0;
  for (let r = 0; r < n; r++) {
    const xv = xs[r];
    while (c < vs.length - 2 && xv > vs[c + 1]) c++;
    const w = vs[c + 1] - vs[c];
    const s = (xv - vs[c]) / w;
    const phi0 = (1 - s) * (1 - s) * (1 + 2 * s);
    const phi1 = s * s * (3 - 2 * s);
    const psi0 = s * (1 - s) * (1 - s);
    const psi1 = -s * s * (1 - s);
    out[order[r]] = phi0 * val[c] + phi1 * val[c + 1] + (psi0 * slope[c] + psi1 * slope[c + 1]) * w;
  }
  return out;
}

/** Weighted quadratic fit around v with tricube weights (1 − (d/h)³)³; returns value and slope at v. */
function localQuadratic(xs: Float64Array, y: Float64Array, order: number[], dist: Float64Array, v: number, h: number): [number, number] {
  const S = new Float64Array(5);
  const T = new Float64Array(3);
  const hh = h > 0 ? h : 1;
  for (let i = 0; i < xs.length; i++) {
    const d = dist[i];
    let w: number;
    if (h > 0) {
      if (d >= h) continue;
      const r = d / h;
      const a = 1 - r * r * r;
      w = a * a * a;
    } else {
      if (d !== 0) continue;
      w = 1;
    }
    const u = (xs[i] - v) / hh;
    const yi = y[order[i]];
    let up = w;
    for (let k = 0; k < 5; k++) {
      S[k] += up;
      if (k < 3) T[k] += up * yi;
      up *= u;
    }
  }
  const A = [
    [S[0], S[1], S[2], T[0]],
    [S[1], S[2], S[3], T[1]],
    [S[2], S[3], S[4], T[2]],
  ];
  const beta = solve3(A);
  if (!beta) return [T[0] / S[0], 0];
  return [beta[0], beta[1] / hh];
}

/** Gaussian elimination with partial pivoting on an augmented 3×4 system; null if singular. */
function solve3(A: number[][]): number[] | null {
  const scale = Math.max(Math.abs(A[0][0]), Math.abs(A[1][1]), Math.abs(A[2][2]));
  for (let c = 0; c < 3; c++) {
    let piv = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(A[r][c]) > Math.abs(A[piv][c])) piv = r;
    if (Math.abs(A[piv][c]) <= 1e-12 * scale) return null;
    [A[c], A[piv]] = [A[piv], A[c]];
    for (let r = c + 1; r < 3; r++) {
      const f = A[r][c] / A[c][c];
      for (let k = c; k < 4; k++) A[r][k] -= f * A[c][k];
    }
  }
  const b = [0, 0, 0];
  for (let r = 2; r >= 0; r--) {
    let s = A[r][3];
    for (let k = r + 1; k < 3; k++) s -= A[r][k] * b[k];
    b[r] = s / A[r][r];
  }
  return b;
}

/** k-th smallest (0-based) of a scratch array, which is reordered. */
function quickSelect(a: Float64Array, k: number): number {
  let l = 0;
  let r = a.length - 1;
  while (l < r) {
    const pivot = a[(l + r) >> 1];
    let i = l;
    let j = r;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) r = j;
    else if (k >= i) l = i;
    else return a[k];
  }
  return a[k];
}
