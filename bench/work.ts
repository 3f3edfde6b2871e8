/**
 * Hardware-limit columns: bytes moved and floating-point operations per step, counted from the
 * shapes of the run (a model, not a hardware counter), and the rates they imply.
 *
 * The model counts the minimum traffic each step's algorithm needs: CSR entries are 8 bytes
 * (u32 index + f32 value) per read or write, dense values 4 bytes. Steps whose work depends on
 * iteration counts the run does not report (Leiden) have no model (null).
 *
 * HOOK (WebGPU): `measureGpuCeiling` is where the run measures the adapter's ceiling once (a large
 * buffer-to-buffer copy for GB/s, the project's best matmul kernel for GFLOP/s), and WebGPU steps
 * report device bytes/FLOPs from their dispatch shapes. Until src/gpu exposes both, the ceiling is
 * null and the CPU model below fills the columns for every backend.
 */
import type { Shapes } from "./child.js";

export interface StepWork {
  bytes: number | null;
  flops: number | null;
}

export function stepWork(step: string, s: Shapes): StepWork {
  const csr = 8;
  switch (step) {
    case "qc": // two passes over the input CSR (cells/genes per row and per column), one subset copy
      return { bytes: 3 * csr * s.nnzIn, flops: 2 * s.nnzIn };
    case "normalize": // read counts, write log-normalized values
      return { bytes: 2 * csr * s.nnz, flops: 3 * s.nnz };
    case "hvg": // one pass of moments over the normalized CSR
      return { bytes: csr * s.nnz, flops: 4 * s.nnz };
    case "pca": {
      // implicit clipped-scaled Gram: Σ_cells nnz_row² ≈ nnzHvg²/n multiply-adds; projection n·h·k
      const gram = (2 * s.nnzHvg * s.nnzHvg) / Math.max(1, s.nCells);
      const eig = 2 * s.nHvg * s.nHvg * 3 * s.nComps; // Lanczos, ~3 nComps matrix-vector products
      return { bytes: 2 * csr * s.nnzHvg + 4 * s.nCells * s.nComps, flops: gram + eig + 2 * s.nnzHvg * s.nComps };
    }
    case "neighbors_knn": // all pairs once (symmetric), 3 flops per coordinate
      return { bytes: 4 * s.nCells * s.nPcs + 8 * s.nCells * s.k, flops: 1.5 * s.nCells * s.nCells * s.nPcs };
    case "neighbors_graph":
      return { bytes: 8 * s.nCells * s.k * 4, flops: 20 * s.nCells * s.k };
    case "umap": {
      // per epoch each edge is sampled ~ weight-proportionally: one attractive + 5 negative moves of 2-d points
      const moves = s.umapEpochs * s.graphNnz * 6;
      return { bytes: moves * 16, flops: moves * 20 };
    }
    case "rank_genes_groups": // per gene a sort of its nonzeros plus rank sums per group
      return { bytes: 2 * csr * s.nnz, flops: s.nnz * (Math.log2(Math.max(2, s.nnz / Math.max(1, s.nGenes))) + s.nClusters) };
    default:
      return { bytes: null, flops: null };
  }
}

export interface GpuCeiling {
  copyGBps: number;
  matmulGflops: number;
}

/** HOOK: measure the WebGPU adapter's ceiling once per run; null until src/gpu provides a copy and matmul kernel. */
export async function measureGpuCeiling(): Promise<GpuCeiling | null> {
  return null;
}
