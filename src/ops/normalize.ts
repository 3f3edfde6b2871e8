/**
 * normalize_total(target_sum) followed by log1p, on CSR values, as scanpy does it in float32:
 * x' = log1p(x · target / rowSum). A cell with no counts keeps zeros. Returns a new CSR with
 * the same structure.
 */
import type { Csr } from "../core/csr.js";

export function normalizeTotalLog1pCpu(X: Csr, targetSum: number): Csr {
  const data = new Float32Array(X.data.length);
  const scaled = new Float32Array(1);
  for (let r = 0; r < X.nRows; r++) {
    const a = X.indptr[r];
    const b = X.indptr[r + 1];
    let total = 0;
    for (let k = a; k < b; k++) total += X.data[k];
    if (total <= 0) continue;
    // scanpy divides float32 counts by a float32 factor total/target; mirror that rounding.
    const factor = Math.fround(total / targetSum);
    for (let k = a; k < b; k++) {
      scaled[0] = X.data[k] / factor;
      data[k] = Math.log1p(scaled[0]);
    }
  }
  return { nRows: X.nRows, nCols: X.nCols, indptr: X.indptr, indices: X.indices, data };
}

/** Per-feature mean and variance (ddof 1) over all rows, zeros included; float64 sums. */
export function featureMomentsCpu(X: Csr): { mean: Float64Array; variance: Float64Array } {
  const n = X.nRows;
  const sum = new Float64Array(X.nCols);
  const sumSq = new Float64Array(X.nCols);
  const nnz = X.indptr[X.nRows];
  for (let k = 0; k < nnz; k++) {
    const v = X.data[k];
    sum[X.indices[k]] += v;
    sumSq[X.indices[k]] += v * v;
  }
  const mean = new Float64Array(X.nCols);
  const variance = new Float64Array(X.nCols);
  for (let j = 0; j < X.nCols; j++) {
    mean[j] = sum[j] / n;
    variance[j] = n > 1 ? Math.max(0, (sumSq[j] - n * mean[j] * mean[j]) / (n - 1)) : 0;
  }
  return { mean, variance };
}
