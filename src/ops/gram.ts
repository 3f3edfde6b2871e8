/**
 * Gram matrix of the scaled, clipped and re-centred matrix that scanpy's PCA sees, built from the
 * sparse log matrix without densifying it (DESIGN.md, "Ideas worth knowing").
 *
 * scanpy: Z = clip((X − μ)/σ, −maxValue, maxValue) (pp.scale, zero_center=True), then sklearn's
 * PCA centres Z again by its column means m (clipping moves them off zero). Write each row of Z
 * as the constant c (c_j = clip(−μ_j/σ_j), the value of a zero entry) plus a sparse part S with
 * s_ij = clip((x_ij − μ_j)/σ_j) − c_j on the stored entries. Then m = c + colSums(S)/n and, with
 * d = c − m, Zc = S + 1dᵀ, so ZcᵀZc = SᵀS + (Sᵀ1)dᵀ + d(1ᵀS) + n·ddᵀ = SᵀS − n·ddᵀ
 * (because Sᵀ1 = −n·d). SᵀS is accumulated row by row from each row's stored entries, upper
 * triangle, float64, in row order (deterministic), then mirrored.
 * maxValue undefined = no clipping (scale(max_value=None)).
 */
import type { Csr } from "../core/csr.js";

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
  let maxRow = 0;
  for (let r = 0; r < n; r++) maxRow = Math.max(maxRow, X.indptr[r + 1] - X.indptr[r]);
  const sv = new Float64Array(maxRow);
  const sj = new Uint32Array(maxRow);
  for (let r = 0; r < n; r++) {
    const a0 = X.indptr[r];
    const len = X.indptr[r + 1] - a0;
    for (let t = 0; t < len; t++) {
      const j = X.indices[a0 + t];
      sj[t] = j;
      sv[t] = clipValue((X.data[a0 + t] - mean[j]) / std[j], maxValue) - c[j];
    }
    // Indices are increasing within a row, so (sj[a], sj[b≥a]) lies in the upper triangle.
    for (let a = 0; a < len; a++) {
      const va = sv[a];
      if (va === 0) continue;
      const o = sj[a] * p;
      for (let b = a; b < len; b++) gram[o + sj[b]] += va * sv[b];
    }
  }
  for (let i = 0; i < p; i++) {
    const di = c[i] - colMean[i];
    for (let j = i; j < p; j++) {
      const v = gram[i * p + j] - n * di * (c[j] - colMean[j]);
      gram[i * p + j] = v;
      gram[j * p + i] = v;
    }
  }
  return { gram, colMean, c };
}
