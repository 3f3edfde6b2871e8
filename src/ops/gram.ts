/**
 * Gram matrix of the scaled, clipped and re-centred matrix that scanpy's PCA sees, built from the
 * sparse log matrix without densifying it (DESIGN.md, "Ideas worth knowing").
 *
 * scanpy: Z = clip((X − μ)/σ, −maxValue, maxValue) (pp.scale, zero_center=True), then sklearn's
 * PCA centres Z again by its column means m (clipping moves them off zero). Write each row of Z
 * as the constant c (c_j = clip(−μ_j/σ_j), the value of a zero entry) plus a sparse part S with
 * s_ij = clip((x_ij − μ_j)/σ_j) − c_j on the stored entries. Then m = c + colSums(S)/n and, with
 * d = c − m, Zc = S + 1dᵀ, so ZcᵀZc = SᵀS + (Sᵀ1)dᵀ + d(1ᵀS) + n·ddᵀ = SᵀS − n·ddᵀ
 * (because Sᵀ1 = −n·d). SᵀS's upper triangle is built one Gram row at a time (Gustavson, over
 * a by-feature index of the stored entries) per block of cells, float64, in a fixed order
 * (deterministic), then mirrored.
 * maxValue undefined = no clipping (scale(max_value=None)).
 */
import type { Csr } from "../core/csr.js";
import type { Gpu } from "../gpu/device.js";
import { destroyCsrChunk, type GpuCsrChunk, type RowChunk, rowChunks, uploadCsrChunk } from "../gpu/chunking.js";

/** c_j = the scaled value of a zero entry, clipped. */
export function zeroScaled(mean: Float64Array, std: Float64Array, maxValue: number | undefined): Float64Array {
  const c = new Float64Array(mean.length);
  for (let j = 0; j < mean.length; j++) c[j] = clipValue(-mean[j] / std[j], maxValue);
  return c;
}

export function clipValue(v: number, maxValue: number | undefined): number {
  if (maxValue === undefined) return v;
  return v > maxValue ? maxValue : v < -maxValue ? -maxValue : v;
}

/** Column means m of the clipped scaled matrix Z (see header). */
export function scaledColMeans(X: Csr, mean: Float64Array, std: Float64Array, c: Float64Array, maxValue: number | undefined): Float64Array {
  const p = X.nCols;
  const colSum = new Float64Array(p);
  const nnz = X.indptr[X.nRows];
  for (let k = 0; k < nnz; k++) {
    const j = X.indices[k];
    colSum[j] += clipValue((X.data[k] - mean[j]) / std[j], maxValue) - c[j];
  }
  const m = new Float64Array(p);
  for (let j = 0; j < p; j++) m[j] = c[j] + colSum[j] / X.nRows;
  return m;
}

export function scaledGramCpu(
  X: Csr,
  mean: Float64Array,
  std: Float64Array,
  maxValue: number | undefined,
): { gram: Float64Array; colMean: Float64Array; c: Float64Array } {
  const n = X.nRows;
  const p = X.nCols;
  const c = zeroScaled(mean, std, maxValue);
  const colMean = scaledColMeans(X, mean, std, c, maxValue);
  const gram = new Float64Array(p * p);
  const nnz = X.indptr[n];
  const ip = Int32Array.from(X.indptr);
  const idx = X.indices;
  const s = new Float64Array(nnz);
  for (let t = 0; t < nnz; t++) {
    const j = idx[t];
    s[t] = clipValue((X.data[t] - mean[j]) / std[j], maxValue) - c[j];
  }
  // Gustavson by Gram row, over blocks of cells: within a block, row j sums, over the block's
  // cells expressing j (increasing), s_rj times the rest of that cell's row (indices ≥ j, as
  // they are sorted) into a p-length accumulator that stays in L1, then adds it to the Gram row.
  // Blocks of ≤ 2^18 stored entries keep the rows being re-read in cache. Each entry (j, k) is
  // summed in cell order within a block, block partials in block order: deterministic.
  const BLOCK_NNZ = 1 << 18;
  const ptr = new Int32Array(p + 1);
  const next = new Int32Array(p);
  const at = new Int32Array(Math.min(nnz, BLOCK_NNZ) + maxRowLength(ip, n)); // CSR position of each block entry, by feature
  const end = new Int32Array(at.length); // end of that entry's CSR row
  const acc = new Float64Array(p);
  for (let r0 = 0; r0 < n; ) {
    let r1 = r0 + 1;
    while (r1 < n && ip[r1 + 1] - ip[r0] <= BLOCK_NNZ) r1++;
    ptr.fill(0);
    for (let t = ip[r0]; t < ip[r1]; t++) ptr[idx[t] + 1]++;
    for (let j = 0; j < p; j++) ptr[j + 1] += ptr[j];
    next.set(ptr.subarray(0, p));
    for (let r = r0; r < r1; r++) {
      for (let t = ip[r], e = ip[r + 1]; t < e; t++) {
        const o = next[idx[t]]++;
        at[o] = t;
        end[o] = e;
      }
    }
    for (let j = 0; j < p; j++) {
      const qs = ptr[j];
      const qe = ptr[j + 1];
      if (qs === qe) continue;
      let hi = j;
      for (let q = qs; q < qe; q++) {
        const t0 = at[q];
        const va = s[t0];
        const e = end[q];
        if (va === 0) continue;
        if (idx[e - 1] > hi) hi = idx[e - 1];
        let t = t0;
        // Unrolled by four (the indices within a row are distinct, so the order per entry is kept).
        for (; t + 3 < e; t += 4) {
          const k0 = idx[t];
          const k1 = idx[t + 1];
          const k2 = idx[t + 2];
          const k3 = idx[t + 3];
          const p0 = va * s[t];
          const p1 = va * s[t + 1];
          const p2 = va * s[t + 2];
          const p3 = va * s[t + 3];
          acc[k0] += p0;
          acc[k1] += p1;
          acc[k2] += p2;
          acc[k3] += p3;
        }
        for (; t < e; t++) acc[idx[t]] += va * s[t];
      }
      const o = j * p;
      for (let k = j; k <= hi; k++) {
        gram[o + k] += acc[k];
        acc[k] = 0;
      }
    }
    r0 = r1;
  }
  const d = Float64Array.from(c, (cj, j) => cj - colMean[j]);
  for (let i = 0; i < p; i++) {
    const di = n * d[i];
    const o = i * p;
    for (let j = i; j < p; j++) gram[o + j] -= di * d[j];
  }
  // Mirror the upper triangle in 64×64 tiles (a plain column walk misses the cache on every write).
  for (let i0 = 0; i0 < p; i0 += 64) {
    for (let j0 = i0; j0 < p; j0 += 64) {
      for (let i = i0, ie = Math.min(i0 + 64, p); i < ie; i++) {
        for (let j = Math.max(j0, i + 1), je = Math.min(j0 + 64, p); j < je; j++) gram[j * p + i] = gram[i * p + j];
      }
    }
  }
  return { gram, colMean, c };
}

/**
 * GPU twin of scaledGramCpu (kernels/gram.wgsl). The O(Σ nnz_row²) part runs on the device:
 * scale_entries forms s_ij per stored entry; gram_rows builds Gram row j from the cells that
 * express feature j (a per-chunk CSC built on the host, O(nnz)) and the column sums Sᵀ1, both
 * summed exactly in 64-bit fixed point from the same float32 s. The host returns
 * SᵀS − (Sᵀ1)(1ᵀS)/n (= SᵀS − n·ddᵀ) in float64: that subtraction cancels up to (μ/σ)² of SᵀS,
 * so float32 sums, or a d taken from float64 s, would miss 1e-4. c and colMean are computed
 * exactly as in scaledGramCpu. Cells are row-chunked and Gram rows split into blocks so no
 * binding exceeds maxStorageBufferBindingSize; results do not depend on the chunking.
 * Speed: scatter-heavy; on lavapipe (CPU emulation) it is slower than scaledGramCpu.
 */
export async function scaledGramGpu(
  gpu: Gpu,
  X: Csr,
  mean: Float64Array,
  std: Float64Array,
  maxValue: number | undefined,
): Promise<{ gram: Float64Array; colMean: Float64Array; c: Float64Array }> {
  const code = (await import("../../kernels/gram.wgsl")).default;
  const [scalePipe, gramPipe] = await Promise.all([gpu.pipeline(code, "scale_entries"), gpu.pipeline(code, "gram_rows")]);
  const n = X.nRows;
  const p = X.nCols;
  const c = zeroScaled(mean, std, maxValue);
  const colMean = scaledColMeans(X, mean, std, c, maxValue);
  if (p === 0) return { gram: new Float64Array(0), colMean, c };
  const limit = gpu.limits.maxStorageBufferBindingSize;
  // Gram rows per output block: 8 bytes (fixed-point hi, lo) per entry in one binding.
  const blockRows = Math.min(p, Math.floor(limit / (8 * p)));
  if (blockRows < 1) throw new Error(`scaledGramGpu: a Gram row of ${p} features does not fit one ${limit}-byte binding`);

  const feat = new Float32Array(4 * p);
  for (let j = 0; j < p; j++) {
    feat.set([mean[j], std[j], c[j], c[j] === -mean[j] / std[j] ? 1 : 0], 4 * j);
  }
  const temp: GPUBuffer[] = [gpu.upload(feat, "gram.feat")];
  const work = new Float64Array(p);
  const chunks: { m: GpuCsrChunk; sdata: GPUBuffer; cscPtr: GPUBuffer; cscEntry: GPUBuffer }[] = [];
  try {
    // Cell chunks: the CSC entries (2 × u32) are the widest per-nonzero binding.
    for (const rc of rowChunks(X.indptr, n, limit, 8, 4)) {
      const m = uploadCsrChunk(gpu, X, rc);
      const sdata = gpu.createBuffer(m.nnz * 4, GPUBufferUsage.STORAGE, "gram.sdata");
      const params = gpu.uniforms({ u32: [m.nnz, maxValue === undefined ? 0 : 1], f32: [maxValue ?? 0] });
      temp.push(sdata, params);
      await gpu.run("gram.scale", [
        { pipeline: scalePipe, bindings: [params, , m.indices, m.data, temp[0], sdata], workgroups: Math.ceil(m.nnz / 64) },
      ]);
      const { ptr, entry } = chunkCsc(X, rc, p, work);
      const cscPtr = gpu.upload(ptr, "gram.cscPtr");
      const cscEntry = gpu.upload(entry, "gram.cscEntry");
      temp.push(cscPtr, cscEntry);
      chunks.push({ m, sdata, cscPtr, cscEntry });
    }
    // Fixed point with F fractional bits such that n · max(|s|², |s|) · 2^F < 2^62, F ≤ 48.
    const sMax = scaledBound(X, mean, std, c, maxValue);
    const F = Math.max(0, Math.min(48, Math.floor(62 - Math.log2(Math.max(n * sMax * Math.max(sMax, 1), 1)))));
    const fromFixed = (hi: number, lo: number) => hi * 2 ** (32 - F) + lo * 2 ** -F;
    const gram = new Float64Array(p * p);
    const stsUpper = gram; // SᵀS's upper triangle, turned into the Gram in place below
    const colSum = new Float64Array(p);
    const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const gBuf = gpu.createBuffer(blockRows * p * 8, rw, "gram.sts");
    const sumBuf = gpu.createBuffer(blockRows * 8, rw, "gram.colSum");
    temp.push(gBuf, sumBuf);
    for (let jStart = 0; jStart < p; jStart += blockRows) {
      const jCount = Math.min(blockRows, p - jStart);
      // Heaviest rows first, so the lanes of a workgroup finish together; ties by j (deterministic).
      const order = Uint32Array.from({ length: jCount }, (_, t) => jStart + t).sort((a, b) => work[b] - work[a] || a - b);
      const orderBuf = gpu.upload(order, "gram.order");
      const params = gpu.uniforms({ u32: [p, jCount, jStart, jCount], f32: [2 ** (F - 32)] });
      temp.push(orderBuf, params);
      await gpu.run("gram.rows", [
        { clear: gBuf },
        { clear: sumBuf },
        ...chunks.map((ch) => ({
          pipeline: gramPipe,
          bindings: [params, ch.m.indptr, ch.m.indices, ch.sdata, ch.cscPtr, ch.cscEntry, orderBuf, gBuf, sumBuf],
          workgroups: Math.ceil(jCount / 8),
        })),
      ]);
      const [gb, sb] = await gpu.readbackAll([
        { buffer: gBuf, byteLength: jCount * p * 8 },
        { buffer: sumBuf, byteLength: jCount * 8 },
      ]);
      // Words as (hi: i32, lo: u32) pairs.
      const gHi = new Int32Array(gb);
      const gLo = new Uint32Array(gb);
      const sHi = new Int32Array(sb);
      const sLo = new Uint32Array(sb);
      for (let t = 0; t < jCount; t++) colSum[jStart + t] = fromFixed(sHi[2 * t], sLo[2 * t + 1]);
      for (let j = jStart; j < jStart + jCount; j++) {
        const o = (j - jStart) * p;
        for (let k = j; k < p; k++) stsUpper[j * p + k] = fromFixed(gHi[2 * (o + k)], gLo[2 * (o + k) + 1]);
      }
    }
    // ZcᵀZc = SᵀS − (Sᵀ1)(1ᵀS)/n, with Sᵀ1 summed on the device from the same float32 s.
    for (let j = 0; j < p; j++) {
      for (let k = j; k < p; k++) {
        const v = stsUpper[j * p + k] - (colSum[j] * colSum[k]) / n;
        gram[j * p + k] = v;
        gram[k * p + j] = v;
      }
    }
    return { gram, colMean, c };
  } finally {
    for (const ch of chunks) destroyCsrChunk(ch.m);
    for (const b of temp) b.destroy();
  }
}

function maxRowLength(ip: Int32Array, n: number): number {
  let m = 0;
  for (let r = 0; r < n; r++) m = Math.max(m, ip[r + 1] - ip[r]);
  return m;
}

/** An upper bound on |s_ij| over the stored entries (sizes the fixed-point format). */
function scaledBound(X: Csr, mean: Float64Array, std: Float64Array, c: Float64Array, maxValue: number | undefined): number {
  if (maxValue !== undefined) return 2 * maxValue;
  let xMax = 0;
  for (let k = 0; k < X.indptr[X.nRows]; k++) xMax = Math.max(xMax, Math.abs(X.data[k]));
  let bound = 0;
  for (let j = 0; j < mean.length; j++) bound = Math.max(bound, (xMax + Math.abs(mean[j])) / std[j] + Math.abs(c[j]));
  return bound;
}

/**
 * The chunk's entries grouped by feature, rows increasing: ptr (p + 1) and entry pairs (chunk-local
 * CSR position, chunk-local row). Adds each entry's upper-triangle row length to work[j].
 */
function chunkCsc(X: Csr, rc: RowChunk, p: number, work: Float64Array): { ptr: Uint32Array; entry: Uint32Array } {
  const ptr = new Uint32Array(p + 1);
  for (let k = rc.nnzStart; k < rc.nnzEnd; k++) ptr[X.indices[k] + 1]++;
  for (let j = 0; j < p; j++) ptr[j + 1] += ptr[j];
  const next = ptr.slice(0, p);
  const entry = new Uint32Array(2 * (rc.nnzEnd - rc.nnzStart));
  for (let r = rc.rowStart; r < rc.rowEnd; r++) {
    const end = X.indptr[r + 1];
    for (let k = X.indptr[r]; k < end; k++) {
      const j = X.indices[k];
      const e = next[j]++;
      entry[2 * e] = k - rc.nnzStart;
      entry[2 * e + 1] = r - rc.rowStart;
      work[j] += end - k;
    }
  }
  return { ptr, entry };
}
