/**
 * QC metrics and filters, as scanpy's calculate_qc_metrics / filter_cells / filter_genes.
 * n_genes_by_counts = nonzero features per cell; total_counts = row sum; pct_counts_mt =
 * 100 · (counts on mitochondrial features) / total_counts (0 when the cell has no counts).
 */
import type { Csr } from "../core/csr.js";
import type { Gpu } from "../gpu/device.js";
import { csrChunks, destroyCsrChunk, uploadCsrChunk } from "../gpu/chunking.js";

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

/**
 * GPU twin of cellQcCpu (kernels/qc.wgsl): per-row sums in float32 on the device, one invocation
 * per cell, row chunks sized to the binding limit; pct_counts_mt is formed on the host in float64.
 * Integer counts below 2^24 per cell give exactly the CPU's numbers.
 */
export async function cellQcGpu(gpu: Gpu, X: Csr, mito: Uint8Array): Promise<CellQc> {
  const code = (await import("../../kernels/qc.wgsl")).default;
  const pipeline = await gpu.pipeline(code, "cell_qc");
  const n = X.nRows;
  const out: CellQc = { nGenesByCounts: new Int32Array(n), totalCounts: new Float64Array(n), pctCountsMt: new Float64Array(n) };
  const mitoBuf = gpu.upload(Uint32Array.from(mito), "qc.mito");
  const outUsage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  try {
    for (const c of csrChunks(gpu, X)) {
      const m = uploadCsrChunk(gpu, X, c);
      const bytes = m.nRows * 4;
      const genes = gpu.createBuffer(bytes, outUsage, "qc.nGenes");
      const total = gpu.createBuffer(bytes, outUsage, "qc.total");
      const mt = gpu.createBuffer(bytes, outUsage, "qc.mito");
      const params = gpu.uniforms({ u32: [m.nRows] });
      try {
        await gpu.run("cell_qc", [
          { pipeline, bindings: [params, m.indptr, m.indices, m.data, mitoBuf, genes, total, mt], workgroups: Math.ceil(m.nRows / 64) },
        ]);
        const [g, t, mtv] = await gpu.readbackAll([genes, total, mt].map((buffer) => ({ buffer, byteLength: bytes })));
        const gv = new Uint32Array(g);
        const tv = new Float32Array(t);
        const mv = new Float32Array(mtv);
        for (let i = 0; i < m.nRows; i++) {
          const r = c.rowStart + i;
          out.nGenesByCounts[r] = gv[i];
          out.totalCounts[r] = tv[i];
          out.pctCountsMt[r] = tv[i] > 0 ? (100 * mv[i]) / tv[i] : 0;
        }
      } finally {
        destroyCsrChunk(m);
        for (const b of [genes, total, mt, params]) b.destroy();
      }
    }
  } finally {
    mitoBuf.destroy();
  }
  return out;
}
