/**
 * PCA of the scaled HVG matrix, as scanpy's pp.scale(max_value) + pp.pca(svd_solver='arpack')
 * compute it, without densifying the matrix. X is the (unscaled) log-normalized HVG subset;
 * Z = clip((X − μ)/σ, ±maxValue) is applied implicitly (see gram.ts for the identity) and then
 * re-centred by its column means, as sklearn's PCA does.
 *
 * method "gram": build the p×p Gram ZcᵀZc in one pass over the nonzeros, then the top nComps
 *   eigenpairs by Lanczos with full reorthogonalisation (Ritz residuals ≤ 1e-6·λ₁; PCs 1–50
 *   match arpack's subspace to 1e-8). Each step costs p² (upper-triangle symmetric mat-vec).
 * method "krylov": the same Lanczos run on the implicit operator v ↦ SᵀSv − n·d(dᵀv), two
 *   sparse passes (≈ 4·nnz flops) per step, never forming the p×p matrix; right for wide
 *   feature sets and, on the CPU, for any matrix with 4·nnz < p².
 *   Deliberate difference from DESIGN.md's suggestion: this is single-vector Lanczos (a Krylov
 *   method converged to the same tolerance), not randomized block Krylov.
 * Without `method`, the cheaper per-step route is taken (krylov when 4·nnz < p², else gram);
 * both converge to the same tolerance, so the choice changes only the last digits.
 *
 * Outputs as sklearn: scores = Zc·V (n×k), components = Vᵀ (k×p), variance = λ/(n−1)
 * (explained_variance_), varianceRatio = variance / total variance of Z (sum over all features
 * of the ddof-1 column variances). Signs follow sklearn 1.2's svd_flip(u_based_decision=True):
 * in each component the score of largest magnitude (first such cell) is positive.
 */
import type { Csr } from "../core/csr.js";
import { lanczosTopK, symMatVec } from "../core/linalg.js";
import type { Gpu } from "../gpu/device.js";
import { destroyCsrChunk, rowChunks, uploadCsrChunk } from "../gpu/chunking.js";
import { clipValue, scaledColMeans, scaledGramCpu, scaledGramGpu, zeroScaled } from "./gram.js";
import { featureMomentsGpu } from "./normalize.js";
import { scaleParamsCpu } from "./scale.js";

export interface PcaResult {
  scores: Float32Array /* n x k row-major */;
  components: Float32Array /* k x p row-major */;
  variance: Float64Array;
  varianceRatio: Float64Array;
}

// Ritz residuals ≤ 1e-6·λ₁: measured on pbmc3k and kang, the PC1–50 subspace still matches
// scanpy's arpack to 1 − 6e-9 and kNN@15 recall is ≥ 0.9998 (1e-8: 1 − 7e-10, ≥ 0.9999), for
// ~20 fewer Lanczos steps.
const TOL = 1e-6;

export interface PcaOptions {
  nComps: number;
  maxValue?: number;
  seed: number;
  method?: "gram" | "krylov";
}

/** Scale parameters and Gram computed elsewhere (the GPU twin); the rest is the CPU route. */
interface PcaInputs {
  mean: Float64Array;
  std: Float64Array;
  gram: { gram: Float64Array; colMean: Float64Array; c: Float64Array };
}

export function pcaCpu(X: Csr, opts: PcaOptions): PcaResult {
  return pcaWith(X, opts);
}

/**
 * GPU twin: the per-gene scale parameters (kernels/moments.wgsl), the Gram of the scaled,
 * clipped matrix (kernels/gram.wgsl) and the scores (kernels/spmm.wgsl, float32 sums) are
 * computed on the device; the p×p eigenproblem (≤ 100 pairs of a small dense matrix) and the
 * sign flip stay on the CPU, as DESIGN.md allows.
 */
export async function pcaGpu(gpu: Gpu, X: Csr, opts: PcaOptions): Promise<PcaResult> {
  const { mean, variance } = await featureMomentsGpu(gpu, X);
  const std = Float64Array.from(variance, (v) => (v > 0 ? Math.sqrt(v) : 1));
  const gram = await scaledGramGpu(gpu, X, mean, std, opts.maxValue);
  const sv = solve(X, { ...opts, method: "gram" }, { mean, std, gram });
  const { Vt, dV } = loadings(sv, X.nCols, opts.nComps);
  const scores = await scaledSpmmGpu(gpu, X, mean, std, sv.c, opts.maxValue, Float32Array.from(Vt), opts.nComps, dV);
  return finish(scores, sv, X.nRows, X.nCols, opts.nComps);
}

function pcaWith(X: Csr, opts: PcaOptions): PcaResult {
  const n = X.nRows;
  const p = X.nCols;
  const k = opts.nComps;
  const sv = solve(X, opts);
  const { Vt, dV } = loadings(sv, p, k);
  const s = sv.s ?? sparseScaled(X, sv.mean, sv.std, sv.c, opts.maxValue);
  const ip = Int32Array.from(X.indptr);
  const scores = new Float64Array(n * k);
  const cols = X.indices;
  for (let r = 0; r < n; r++) {
    const o = r * k;
    scores.set(dV, o);
    // Four stored entries per sweep over the score row: a quarter of the read-modify-writes.
    let t = ip[r];
    const e = ip[r + 1];
    for (; t + 3 < e; t += 4) {
      const s0 = s[t];
      const s1 = s[t + 1];
      const s2 = s[t + 2];
      const s3 = s[t + 3];
      const v0 = cols[t] * k;
      const v1 = cols[t + 1] * k;
      const v2 = cols[t + 2] * k;
      const v3 = cols[t + 3] * k;
      for (let i = 0; i < k; i++) scores[o + i] += s0 * Vt[v0 + i] + s1 * Vt[v1 + i] + s2 * Vt[v2 + i] + s3 * Vt[v3 + i];
    }
    for (; t < e; t++) {
      const st = s[t];
      const vo = cols[t] * k;
      for (let i = 0; i < k; i++) scores[o + i] += st * Vt[vo + i];
    }
  }
  return finish(scores, sv, n, p, k);
}

/** Eigenpairs of ZcᵀZc and what the scores need: c, colMean, trace, S on the stored entries (krylov only). */
interface Solved {
  eig: { values: Float64Array; vectors: Float64Array };
  mean: Float64Array;
  std: Float64Array;
  c: Float64Array;
  colMean: Float64Array;
  trace: number;
  s?: Float64Array;
}

function solve(X: Csr, opts: PcaOptions, pre?: PcaInputs): Solved {
  const n = X.nRows;
  const p = X.nCols;
  const k = opts.nComps;
  if (!(k >= 1 && k <= Math.min(n, p))) throw new Error(`pcaCpu: nComps=${k} must be in [1, min(n_cells, n_features)=${Math.min(n, p)}]`);
  if (X.indptr[n] >= 2 ** 31) throw new Error(`pcaCpu: ${X.indptr[n]} stored entries exceed the CPU route's 2^31 limit`);
  // Integer row pointers: indexing typed arrays with float64 offsets is several times slower in V8.
  const ip = Int32Array.from(X.indptr);
  const { mean, std } = pre ?? scaleParamsCpu(X);
  const method = opts.method ?? (4 * X.indptr[n] < p * p ? "krylov" : "gram");
  let c: Float64Array;
  let colMean: Float64Array;
  let trace = 0;
  let eig;
  // Sparse part S of Z (values on the stored entries): the krylov operator needs it.
  let s: Float64Array | undefined;
  if (method === "gram") {
    const g = pre?.gram ?? scaledGramCpu(X, mean, std, opts.maxValue);
    c = g.c;
    colMean = g.colMean;
    for (let j = 0; j < p; j++) trace += g.gram[j * p + j];
    eig = lanczosTopK((x, y) => symMatVec(g.gram, p, x, y), p, k, opts.seed, { tol: TOL });
  } else {
    c = zeroScaled(mean, std, opts.maxValue);
    colMean = scaledColMeans(X, mean, std, c, opts.maxValue);
    const sk = sparseScaled(X, mean, std, c, opts.maxValue);
    s = sk;
    const d = Float64Array.from(c, (cj, j) => cj - colMean[j]);
    for (let t = 0; t < sk.length; t++) trace += sk[t] * sk[t];
    for (let j = 0; j < p; j++) trace -= n * d[j] * d[j];
    // Sᵀu as a gather over a CSC copy of S (scattered += is slower than gathers in V8).
    const ct = cscOf(X, sk);
    const u = new Float64Array(n);
    const idx = X.indices;
    const { ptr, row, val } = ct;
    const apply = (x: Float64Array, y: Float64Array): void => {
      for (let r = 0; r < n; r++) u[r] = gatherDot(sk, idx, x, ip[r], ip[r + 1], 0);
      let dx = 0;
      for (let j = 0; j < p; j++) dx += d[j] * x[j];
      for (let j = 0; j < p; j++) y[j] = gatherDot(val, row, u, ptr[j], ptr[j + 1], -n * d[j] * dx);
    };
    eig = lanczosTopK(apply, p, k, opts.seed, { tol: TOL });
  }
  return { eig, mean, std, c, colMean, trace, s };
}

/** V stored p×k (contiguous per feature) and dᵀV, d = c − colMean: scores = S·V + 1·(dᵀV). */
function loadings(sv: Solved, p: number, k: number): { Vt: Float64Array; dV: Float64Array } {
  const { eig, c, colMean } = sv;
  const Vt = new Float64Array(p * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < p; j++) Vt[j * k + i] = eig.vectors[i * p + j];
  const dV = new Float64Array(k);
  for (let j = 0; j < p; j++) {
    const dj = c[j] - colMean[j];
    for (let i = 0; i < k; i++) dV[i] += dj * Vt[j * k + i];
  }
  return { Vt, dV };
}

/** svd_flip on the scores (see header), float32 output, explained variance and ratios. */
function finish(scores: Float64Array | Float32Array, sv: Solved, n: number, p: number, k: number): PcaResult {
  const { eig, trace } = sv;
  const components = new Float32Array(k * p);
  const sign = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let best = 0;
    let arg = 0;
    for (let r = 0; r < n; r++) {
      const a = Math.abs(scores[r * k + i]);
      if (a > best) {
        best = a;
        arg = r;
      }
    }
    sign[i] = scores[arg * k + i] < 0 ? -1 : 1;
    for (let j = 0; j < p; j++) components[i * p + j] = sign[i] * eig.vectors[i * p + j];
  }
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) out[r * k + i] = sign[i] * scores[r * k + i];

  const totalVar = trace / (n - 1);
  const variance = Float64Array.from(eig.values, (l) => Math.max(l, 0) / (n - 1));
  const varianceRatio = Float64Array.from(variance, (v) => (totalVar > 0 ? v / totalVar : 0));
  return { scores: out, components, variance, varianceRatio };
}

/** Column-major copy of S: per feature, its cells (increasing) and values. */
function cscOf(X: Csr, s: Float64Array): { ptr: Int32Array; row: Int32Array; val: Float64Array } {
  const nnz = s.length;
  const ptr = new Int32Array(X.nCols + 1);
  for (let t = 0; t < nnz; t++) ptr[X.indices[t] + 1]++;
  for (let j = 0; j < X.nCols; j++) ptr[j + 1] += ptr[j];
  const next = ptr.slice(0, X.nCols);
  const row = new Int32Array(nnz);
  const val = new Float64Array(nnz);
  for (let r = 0; r < X.nRows; r++) {
    for (let t = X.indptr[r], e = X.indptr[r + 1]; t < e; t++) {
      const o = next[X.indices[t]]++;
      row[o] = r;
      val[o] = s[t];
    }
  }
  return { ptr, row, val };
}

/** s_t = clip((x_t − μ_j)/σ_j) − c_j for every stored entry t (column j). */
function sparseScaled(X: Csr, mean: Float64Array, std: Float64Array, c: Float64Array, maxValue: number | undefined): Float64Array {
  const nnz = X.indptr[X.nRows];
  const s = new Float64Array(nnz);
  for (let t = 0; t < nnz; t++) {
    const j = X.indices[t];
    s[t] = clipValue((X.data[t] - mean[j]) / std[j], maxValue) - c[j];
  }
  return s;
}

/**
 * CPU reference for the scores kernel: out[r, i] = dV_i + Σ_{t in row r} s_t · Vt[col_t·k + i],
 * s_t = clip((x_t − μ_j)/σ_j) − c_j in float64, summed in float64 in CSR order, rounded to float32.
 */
export function scaledSpmmCpu(
  X: Csr,
  mean: Float64Array,
  std: Float64Array,
  c: Float64Array,
  maxValue: number | undefined,
  Vt: Float32Array,
  k: number,
  dV: Float64Array,
): Float32Array {
  const out = new Float32Array(X.nRows * k);
  const acc = new Float64Array(k);
  for (let r = 0; r < X.nRows; r++) {
    acc.set(dV);
    for (let t = X.indptr[r], e = X.indptr[r + 1]; t < e; t++) {
      const j = X.indices[t];
      const st = clipValue((X.data[t] - mean[j]) / std[j], maxValue) - c[j];
      for (let i = 0; i < k; i++) acc[i] += st * Vt[j * k + i];
    }
    out.set(acc, r * k);
  }
  return out;
}

/**
 * GPU twin of scaledSpmmCpu (kernels/spmm.wgsl): one invocation per cell and block of 8
 * components, s_t formed on the fly as gram.wgsl forms it, float32 sums in a fixed order
 * (deterministic, chunk-independent).
 * Cells are row-chunked so the n×k output (4k bytes a row) and the CSR arrays fit one binding each.
 */
export async function scaledSpmmGpu(
  gpu: Gpu,
  X: Csr,
  mean: Float64Array,
  std: Float64Array,
  c: Float64Array,
  maxValue: number | undefined,
  Vt: Float32Array,
  k: number,
  dV: Float64Array,
): Promise<Float32Array> {
  const n = X.nRows;
  const p = X.nCols;
  const out = new Float32Array(n * k);
  if (n === 0 || k === 0) return out;
  const limit = gpu.limits.maxStorageBufferBindingSize;
  if (p * k * 4 > limit || p * 16 > limit) throw new Error(`scaledSpmmGpu: ${p} × ${k} loadings do not fit one ${limit}-byte binding`);
  const code = (await import("../../kernels/spmm.wgsl")).default;
  const pipe = await gpu.pipeline(code, "scores");
  const feat = new Float32Array(4 * p);
  for (let j = 0; j < p; j++) feat.set([mean[j], std[j], c[j], c[j] === -mean[j] / std[j] ? 1 : 0], 4 * j);
  const temp: GPUBuffer[] = [gpu.upload(feat, "spmm.feat"), gpu.upload(Vt, "spmm.V"), gpu.upload(Float32Array.from(dV), "spmm.dV")];
  try {
    for (const rc of rowChunks(X.indptr, n, limit, 4, 4 * k)) {
      const m = uploadCsrChunk(gpu, X, rc);
      try {
        const cnt = m.nRows * k;
        const invocations = m.nRows * Math.ceil(k / 8);
        const outBuf = gpu.createBuffer(cnt * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, "spmm.out");
        const params = gpu.uniforms({ u32: [m.nRows, k, maxValue === undefined ? 0 : 1], f32: [maxValue ?? 0] });
        temp.push(outBuf, params);
        await gpu.run("spmm.scores", [
          { pipeline: pipe, bindings: [params, m.indptr, m.indices, m.data, temp[0], temp[1], temp[2], outBuf], workgroups: Math.ceil(invocations / 64) },
        ]);
        out.set(new Float32Array(await gpu.readback(outBuf, cnt * 4)), rc.rowStart * k);
      } finally {
        destroyCsrChunk(m);
      }
    }
    return out;
  } finally {
    for (const b of temp) b.destroy();
  }
}

/**
 * init + Σ_{t∈[start,end)} val[t]·x[col[t]], with four independent partial sums: one chain of
 * dependent adds is latency-bound. The sum order is fixed, so results are reproducible.
 */
function gatherDot(val: Float64Array, col: ArrayLike<number>, x: Float64Array, start: number, end: number, init: number): number {
  let a0 = init;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  let t = start;
  for (; t + 3 < end; t += 4) {
    a0 += val[t] * x[col[t]];
    a1 += val[t + 1] * x[col[t + 1]];
    a2 += val[t + 2] * x[col[t + 2]];
    a3 += val[t + 3] * x[col[t + 3]];
  }
  for (; t < end; t++) a0 += val[t] * x[col[t]];
  return a0 + a1 + (a2 + a3);
}
