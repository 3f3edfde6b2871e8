/**
 * Hardware-limit columns: bytes moved and floating-point operations per step, counted from the
 * shapes of the run (a model, not a hardware counter), and the rates they imply.
 *
 * The model counts the minimum traffic each step's algorithm needs: CSR entries are 8 bytes
 * (u32 index + f32 value) per read or write, dense values 4 bytes. Steps whose work depends on
 * iteration counts the run does not report (Leiden) have no model (null).
 *
 * The same model serves every backend; for WebGPU steps the bench also divides the achieved rates
 * by the device's ceiling, measured once per run (`measureGpuCeiling`: src/gpu/ceiling.ts, a large
 * buffer copy for GB/s and the project's best f32 matmul for GFLOP/s). Step times are wall times
 * of the whole step (host-side subsetting, uploads and readbacks included), so the percentages
 * are lower bounds on how busy the kernels keep the device.
 */
import type { Gpu } from "../src/gpu/device.js";
import { measureCeiling, type CeilingOptions, type GpuCeiling } from "../src/gpu/ceiling.js";
import type { Shapes } from "./child.js";

export type { GpuCeiling };

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

/** The device's ceiling, measured once per run on the bench's own device (a few seconds). */
export async function measureGpuCeiling(gpu: Gpu, opts?: CeilingOptions): Promise<GpuCeiling> {
  return measureCeiling(gpu, opts);
}

/** Achieved rate as a percentage of the ceiling (null where either is missing). */
export function pctOf(rate: number | null, ceiling: number | undefined): number | null {
  return rate === null || !ceiling ? null : (100 * rate) / ceiling;
}
