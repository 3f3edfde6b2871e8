/**
 * Analysis parameters, named as scanpy names them. Defaults follow scanpy; `seurat` follows the
 * Seurat pbmc3k tutorial (LogNormalize, vst HVGs, 10 PCs, k=20 SNN pruned at 1/15, Louvain 0.5).
 */
import type { HvgFlavor } from "../ops/hvg.js";

export type Backend = "auto" | "cpu" | "webgpu";

export interface AnalyzeParams {
  preset: "scanpy" | "seurat";
  minGenes: number;
  minCells: number;
  maxGenes?: number;
  maxPctMt?: number;
  targetSum: number;
  flavor: HvgFlavor;
  nTopGenes: number;
  maxValue?: number;
  nComps: number;
  /** PCs used for the neighbour search (scanpy: all computed comps; Seurat tutorial: 10). */
  nPcs: number;
  nNeighbors: number;
  /**
   * "exact" brute force; "approx": IVF on a device, NN-descent on the CPU; "ivf": IVF on either;
   * "auto": exact up to 50,000 cells, approx above.
   */
  knnMethod: "auto" | "exact" | "approx" | "ivf";
  /** "umap": scanpy's fuzzy simplicial set; "snn": Seurat's shared-nearest-neighbour graph. */
  graph: "umap" | "snn";
  snnPrune: number;
  clustering: "leiden" | "louvain";
  resolution: number;
  /** Independent clustering starts, best modularity kept (scanpy: 1; Seurat's n.start: 10). */
  nStarts: number;
  minDist: number;
  spread: number;
  seed: number;
  markerMethod: "wilcoxon" | "t-test";
  tieCorrect: boolean;
  backend: Backend;
  /** Host memory budget in bytes; above it the count steps work in blocks (plan.ts). None: whole. */
  maxMemory?: number;
  /** Device memory budget in bytes: no single GPU buffer binding is made larger than a quarter of it. */
  maxDeviceMemory?: number;
}

export const scanpyDefaults: AnalyzeParams = {
  preset: "scanpy",
  minGenes: 200,
  minCells: 3,
  targetSum: 1e4,
  flavor: "seurat",
  nTopGenes: 2000,
  maxValue: 10,
  nComps: 50,
  nPcs: 50,
  nNeighbors: 15,
  knnMethod: "auto",
  graph: "umap",
  snnPrune: 1 / 15,
  clustering: "leiden",
  resolution: 1,
  nStarts: 1,
  minDist: 0.5,
  spread: 1,
  seed: 0,
  markerMethod: "wilcoxon",
  tieCorrect: false,
  backend: "auto",
};

export const seuratDefaults: AnalyzeParams = {
  ...scanpyDefaults,
  preset: "seurat",
  flavor: "seurat_v3",
  nPcs: 10,
  nNeighbors: 20,
  graph: "snn",
  clustering: "louvain",
  resolution: 0.5,
  nStarts: 10,
  minDist: 0.3,
};

export function presetDefaults(preset: string): AnalyzeParams {
  if (preset === "scanpy") return { ...scanpyDefaults };
  if (preset === "seurat") return { ...seuratDefaults };
  throw new Error(`unknown preset '${preset}' (expected scanpy or seurat)`);
}
