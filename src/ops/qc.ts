/**
 * QC metrics and filters, as scanpy's calculate_qc_metrics / filter_cells / filter_genes.
 * n_genes_by_counts = nonzero features per cell; total_counts = row sum; pct_counts_mt =
 * 100 · (counts on mitochondrial features) / total_counts (0 when the cell has no counts).
 */
import type { Csr } from "../core/csr.js";

export interface CellQc {
  nGenesByCounts: Int32Array;
  totalCounts: Float64Array;
  pctCountsMt: Float64Array;
}

/** Features whose symbol starts with "MT-" (human) or "mt-" (mouse). */
export function mitoMask(symbols: string[]): Uint8Array {
  return Uint8Array.from(symbols, (s) => (s.startsWith("MT-") || s.startsWith("mt-") ? 1 : 0));
}

export function cellQcCpu(X: Csr, mito: Uint8Array): CellQc {
  const n = X.nRows;
  const nGenesByCounts = new Int32Array(n);
  const totalCounts = new Float64Array(n);
  const pctCountsMt = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let genes = 0;
    let total = 0;
    let mt = 0;
    for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) {
      const v = X.data[k];
      if (v !== 0) genes++;
      total += v;
      if (mito[X.indices[k]]) mt += v;
    }
    nGenesByCounts[r] = genes;
    totalCounts[r] = total;
    pctCountsMt[r] = total > 0 ? (100 * mt) / total : 0;
  }
  return { nGenesByCounts, totalCounts, pctCountsMt };
}

/** Per feature: number of cells with a nonzero value. */
export function cellsPerGeneCpu(X: Csr): Int32Array {
  const out = new Int32Array(X.nCols);
  const nnz = X.indptr[X.nRows];
  for (let k = 0; k < nnz; k++) if (X.data[k] !== 0) out[X.indices[k]]++;
  return out;
}
