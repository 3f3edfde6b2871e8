/**
 * normalize_total(target_sum) followed by log1p, on CSR values, as scanpy does it in float32:
 * x' = log1p(x · target / rowSum). A cell with no counts keeps zeros. Returns a new CSR with
 * the same structure.
 */
import { countsRows, type CountMatrix } from "../core/counts.js";
import type { Csr } from "../core/csr.js";
import type { Gpu, Step } from "../gpu/device.js";
import { csrChunks, destroyCsrChunk, uploadCsrChunk } from "../gpu/chunking.js";

export function normalizeTotalLog1pCpu(X: Csr, targetSum: number): Csr {
  const factors = normalizeFactorsCpu(X, targetSum);
  const data = new Float32Array(X.data.length);
  for (let r = 0; r < X.nRows; r++) {
    const factor = factors[r];
    if (factor === 0) continue;
    for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) data[k] = logNormValue(X.data[k], factor);
  }
  return { nRows: X.nRows, nCols: X.nCols, indptr: X.indptr, indices: X.indices, data };
}

/**
 * Per-cell divisor float32(total / target) (scanpy divides float32 counts by a float32 factor;
 * the total is a float64 sum, exact for integer counts); 0 for a cell without counts, which
 * keeps zeros.
 */
export function normalizeFactorsCpu(X: { nRows: number; indptr: Float64Array; data: ArrayLike<number> }, targetSum: number): Float32Array {
  const factors = new Float32Array(X.nRows);
  for (let r = 0; r < X.nRows; r++) {
    let total = 0;
    for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) total += X.data[k];
    factors[r] = total > 0 ? total / targetSum : 0;
  }
  return factors;
}

/** log1p of the float32 quotient, as scanpy's float32 pipeline rounds it. */
export function logNormValue(count: number, factor: number): number {
  return Math.log1p(Math.fround(count / factor));
}

/**
 * Log-normalized values of count rows [r0, r1) as a Csr, the same numbers normalizeTotalLog1pCpu
 * gives for those rows; with `colMap` (−1 drops a column) only the mapped columns, renumbered.
 * Lets a large analysis widen a block of rows or of genes at a time from compact counts.
 */
export function logNormRowsCpu(M: CountMatrix, factors: Float32Array, r0: number, r1: number, colMap?: Int32Array, nColsOut?: number): Csr {
  const X = countsRows(M, r0, r1, colMap, nColsOut);
  for (let r = 0; r < X.nRows; r++) {
    const factor = factors[r0 + r];
    for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) X.data[k] = factor === 0 ? 0 : logNormValue(X.data[k], factor);
  }
  return X;
}

/**
 * Per-feature mean and variance (ddof 1) of f(x) over all rows, zeros included (f(0) = 0
 * assumed); float64 sums.
 */
export function featureMomentsCpu(X: Csr, f?: (v: number) => number): { mean: Float64Array; variance: Float64Array } {
  return new FeatureMoments(X.nCols).add(X, f).result();
}

/**
 * featureMomentsCpu accumulated over row blocks given in order: the same float64 sums in the same
 * order, so the same result as one pass over the stacked matrix.
 */
export class FeatureMoments {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private n = 0;

  constructor(readonly nCols: number) {
    this.sum = new Float64Array(nCols);
    this.sumSq = new Float64Array(nCols);
  }

  add(X: Csr, f?: (v: number) => number): this {
    const { sum, sumSq } = this;
    const nnz = X.indptr[X.nRows];
    for (let k = 0; k < nnz; k++) {
      const v = f ? f(X.data[k]) : X.data[k];
      sum[X.indices[k]] += v;
      sumSq[X.indices[k]] += v * v;
    }
    this.n += X.nRows;
    return this;
  }

  result(): { mean: Float64Array; variance: Float64Array } {
    const n = this.n;
    const mean = new Float64Array(this.nCols);
    const variance = new Float64Array(this.nCols);
    for (let j = 0; j < this.nCols; j++) {
      mean[j] = this.sum[j] / n;
      variance[j] = n > 1 ? Math.max(0, (this.sumSq[j] - n * mean[j] * mean[j]) / (n - 1)) : 0;
    }
    return { mean, variance };
  }
}

/**
 * GPU twin of normalizeTotalLog1pCpu (kernels/normalize.wgsl): one invocation per cell computes
 * its float32 total (exact for integer counts), the float32 factor and log1p(x / factor); row
 * chunks sized to the binding limit. Matches the CPU within a few float32 ulps.
 */
export async function normalizeTotalLog1pGpu(gpu: Gpu, X: Csr, targetSum: number): Promise<Csr> {
  const code = (await import("../../kernels/normalize.wgsl")).default;
  const pipeline = await gpu.pipeline(code, "normalize_log1p");
  const data = new Float32Array(X.data.length);
  for (const c of csrChunks(gpu, X)) {
    const m = uploadCsrChunk(gpu, X, c);
    const out = gpu.createBuffer(m.nnz * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, "normalize.out");
    const params = gpu.uniforms({ u32: [m.nRows], f32: [targetSum] });
    try {
      await gpu.run("normalize_log1p", [
        { pipeline, bindings: [params, m.indptr, m.data, out], workgroups: Math.ceil(m.nRows / 64) },
      ]);
      data.set(new Float32Array(await gpu.readback(out, m.nnz * 4)), c.nnzStart);
    } finally {
      destroyCsrChunk(m);
      out.destroy();
      params.destroy();
    }
  }
  return { nRows: X.nRows, nCols: X.nCols, indptr: X.indptr, indices: X.indices, data };
}

/**
 * GPU twin of featureMomentsCpu (kernels/moments.wgsl), two passes with fixed-order reductions:
 * (1) per-block float32 sums and entry counts per feature, reduced over blocks in order, summed
 * over row chunks in float64 → mean; (2) the same for (x − K_j)², K_j = mean_j in float32. The
 * variance is then [Σ_nz (x − K)² + (n − nnz_j)·K² − n·(mean − K)²] / (n − 1): shifting by the
 * mean avoids the cancellation of Σx² − n·mean² in float32.
 */
export async function featureMomentsGpu(gpu: Gpu, X: Csr): Promise<{ mean: Float64Array; variance: Float64Array }> {
  const code = (await import("../../kernels/moments.wgsl")).default;
  const [sumsPipe, sqPipe, reducePipe] = await Promise.all(
    ["block_sums", "block_sq_dev", "reduce_blocks"].map((e) => gpu.pipeline(code, e)),
  );
  const n = X.nRows;
  const p = X.nCols;
  const sum = new Float64Array(p);
  const nnzPer = new Float64Array(p);
  const sq = new Float64Array(p);
  const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const outSum = gpu.createBuffer(p * 4, rw, "moments.sum");
  const outCount = gpu.createBuffer(p * 4, rw, "moments.count");
  const shift = gpu.createBuffer(p * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, "moments.shift");
  const chunks = csrChunks(gpu, X).map((c) => uploadCsrChunk(gpu, X, c));
  const temp: GPUBuffer[] = [outSum, outCount, shift];
  try {
    const plans = chunks.map((m) => {
      const b = momentBlocks(gpu, m.nRows, p, "moments");
      temp.push(b.params, b.partial, b.count);
      return { m, ...b };
    });
    for (const pl of plans) {
      const { m } = pl;
      await gpu.run("moments.sums", [
        { clear: pl.partial },
        { clear: pl.count },
        { pipeline: sumsPipe, bindings: [pl.params, m.indptr, m.indices, m.data, , pl.partial, pl.count], workgroups: pl.workgroups },
        reduceBlocksStep(reducePipe, pl, outSum, outCount, p),
      ]);
      const [s, c] = await gpu.readbackAll([{ buffer: outSum, byteLength: p * 4 }, { buffer: outCount, byteLength: p * 4 }]);
      const sv = new Float32Array(s);
      const cv = new Uint32Array(c);
      for (let j = 0; j < p; j++) {
        sum[j] += sv[j];
        nnzPer[j] += cv[j];
      }
    }
    const mean = new Float64Array(p);
    for (let j = 0; j < p; j++) mean[j] = sum[j] / n;
    const K = Float32Array.from(mean);
    gpu.device.queue.writeBuffer(shift, 0, K);
    for (const pl of plans) {
      const { m } = pl;
      await gpu.run("moments.sq", [
        { clear: pl.partial },
        { pipeline: sqPipe, bindings: [pl.params, m.indptr, m.indices, m.data, shift, pl.partial], workgroups: pl.workgroups },
        reduceBlocksStep(reducePipe, pl, outSum, outCount, p),
      ]);
      const sv = new Float32Array(await gpu.readback(outSum, p * 4));
      for (let j = 0; j < p; j++) sq[j] += sv[j];
    }
    const variance = new Float64Array(p);
    if (n > 1) {
      for (let j = 0; j < p; j++) {
        const d = mean[j] - K[j];
        const ss = sq[j] + (n - nnzPer[j]) * K[j] * K[j] - n * d * d;
        variance[j] = Math.max(0, ss / (n - 1));
      }
    }
    return { mean, variance };
  } finally {
    for (const m of chunks) destroyCsrChunk(m);
    for (const b of temp) b.destroy();
  }
}

// 128 blocks of ≥ 8 rows: parallel enough for lavapipe's threads, and 128 × nCols float32
// partials (17 MB for 33k features) stay well inside one binding.
const MOMENT_BLOCKS = 128;
const MIN_ROWS_PER_BLOCK = 8;

/** The block partials of one uploaded row chunk for kernels/moments.wgsl's block_* entries (their uniforms, buffers, workgroup count); the caller destroys params, partial and count. */
export interface MomentBlocks {
  nBlocks: number;
  params: GPUBuffer;
  partial: GPUBuffer;
  count: GPUBuffer;
  /** Workgroups of a block_* dispatch (16 blocks each). */
  workgroups: number;
}

/** Blocks for a chunk of nRows rows × p features: enough for parallelism, few enough that nBlocks × p partials fit one binding. */
export function momentBlocks(gpu: Gpu, nRows: number, p: number, label: string): MomentBlocks {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const maxBlocks = Math.min(MOMENT_BLOCKS, Math.floor(limit / (4 * Math.max(p, 1))));
  if (maxBlocks < 1) throw new Error(`${label}: ${p} features do not fit one ${limit}-byte binding`);
  const rowsPerBlock = Math.max(MIN_ROWS_PER_BLOCK, Math.ceil(nRows / maxBlocks));
  const nBlocks = Math.ceil(nRows / rowsPerBlock);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  return {
    nBlocks,
    params: gpu.uniforms({ u32: [nRows, p, nBlocks, rowsPerBlock] }, `${label}.params`),
    partial: gpu.createBuffer(nBlocks * p * 4, usage, `${label}.partial`),
    count: gpu.createBuffer(nBlocks * p * 4, usage, `${label}.partialCount`),
    workgroups: Math.ceil(nBlocks / 16),
  };
}

/** reduce_blocks over a chunk's blocks into outSum / outCount (p features). */
export function reduceBlocksStep(pipeline: GPUComputePipeline, b: MomentBlocks, outSum: GPUBuffer, outCount: GPUBuffer, p: number): Step {
  return { pipeline, bindings: [b.params, , , , , b.partial, b.count, outSum, outCount], workgroups: Math.ceil(p / 64) };
}
