/**
 * The analysis run: QC → normalize → HVG → PCA → kNN → graph → clusters → UMAP → markers,
 * each step timed and attributed to the backend that ran it. Produces an AnalysisResult in
 * AnnData's places plus a summary.
 */
import type { CellMatrix, Column, CountCellMatrix, Table } from "../core/cellMatrix.js";
import { compactCounts, countsBytes, countsToCsr, isCountMatrix, type CountMatrix } from "../core/counts.js";
import { subsetTable } from "../core/cellMatrix.js";
import type { Csr } from "../core/csr.js";
import { subsetCols, subsetRows } from "../core/csr.js";
import { fuzzySimplicialSetCpu, fuzzySimplicialSetGpu, knnDistancesCsr, snnGraphCpu, snnGraphGpu } from "../ops/connectivities.js";
import { highlyVariableGenesCpu, highlyVariableGenesGpu, type HvgResult } from "../ops/hvg.js";
import { knnApproxCpu, knnExactCpu, knnExactGpu, type Knn } from "../ops/knn.js";
import { knnIvfCpu, knnIvfGpu } from "../ops/knnIvf.js";
import { leidenCpu, leidenGpu } from "../ops/leiden.js";
import { louvainCpu, louvainGpu } from "../ops/louvain.js";
import { markersToUns, rankGenesGroupsBlockedCpu, rankGenesGroupsCpu, rankGenesGroupsGpu } from "../ops/markers.js";
import { normalizeFactorsCpu, normalizeTotalLog1pCpu, normalizeTotalLog1pGpu } from "../ops/normalize.js";
import { pcaCpu, pcaGpu } from "../ops/pca.js";
import { cellQcCpu, cellQcGpu, cellsPerGeneCpu, mitoMask, type CellQc } from "../ops/qc.js";
import { GpuError, GpuLostError, type Gpu } from "../gpu/device.js";
import { findAbParams, umapLayoutCpu, umapLayoutGpu } from "../ops/umap.js";
import { contentHash, stepKey, type StepCache } from "./cache.js";
import { PipelineError } from "./errors.js";
import type { AnalyzeParams } from "./params.js";
import { betweenBlocks, hvgOnBlocks, logNormColumns, logNormGeneBlock, logNormRowBlocks, qcOnBlocks } from "./blocks.js";
import { planMemory, type MemoryPlan } from "./plan.js";
import type { AnalysisResult, SparseOut, UnsValue } from "./result.js";

export { PipelineError };

export interface StepRecord {
  step: string;
  ms: number;
  /** The backend that computed the result (for a cached step: the one that computed it first). */
  backend: "cpu" | "webgpu";
  /** True when the result came from the step cache. */
  cached?: boolean;
}

/** Emitted when a step starts and when it ends; `fraction` counts finished steps. */
export interface ProgressEvent {
  step: string;
  phase: "start" | "end";
  index: number;
  total: number;
  fraction: number;
  /** Rough time left, from the time taken so far (undefined before the first step ends). */
  etaMs?: number;
}

const STEP_COUNT = 10;

/** Above this many cells, knnMethod "auto" searches approximately (IVF on a device, else NN-descent). */
export const KNN_EXACT_MAX_CELLS = 50_000;

/**
 * Mean |found ∩ exact| / k over up to 256 evenly spaced query cells; the exact k nearest (self
 * first, then by distance, then index) are kept by insertion into a sorted list of k, O(n·(d + k)) per query.
 */
function sampledKnnRecall(pts: Float32Array, n: number, d: number, knn: Knn): number {
  const k = knn.k;
  const queries = Math.min(n, 256);
  const bestD = new Float64Array(k);
  const bestI = new Int32Array(k);
  let hits = 0;
  for (let q = 0; q < queries; q++) {
    const i = Math.floor((q * n) / queries);
    let size = 0;
    for (let j = 0; j < n; j++) {
      let s = -1; // the cell itself is its own first neighbour (Knn's column 0)
      if (j !== i) {
        s = 0;
        for (let t = 0; t < d; t++) {
          const diff = pts[i * d + t] - pts[j * d + t];
          s += diff * diff;
        }
      }
      // j ascends, so an equal distance never displaces a listed (smaller-index) neighbour.
      if (size === k && s >= bestD[k - 1]) continue;
      let pos = size < k ? size++ : k - 1;
      while (pos > 0 && bestD[pos - 1] > s) {
        bestD[pos] = bestD[pos - 1];
        bestI[pos] = bestI[pos - 1];
        pos--;
      }
      bestD[pos] = s;
      bestI[pos] = j;
    }
    const exact = new Set(bestI.subarray(0, size));
    for (let t = 0; t < k; t++) if (exact.has(knn.indices[i * k + t])) hits++;
  }
  return hits / (queries * k);
}

/**
 * Exact kNN up to KNN_EXACT_MAX_CELLS ("auto"); above it, or when asked ("approx"), an
 * approximate search: IVF with a device (its twins are bit-identical, so a fallback to the CPU
 * gives the same lists; the kernel takes up to 256 dimensions), NN-descent without. "ivf" forces IVF.
 */
export function chooseKnnMethod(asked: AnalyzeParams["knnMethod"], nCells: number, nPcs: number, hasGpu: boolean): "exact" | "nn-descent" | "ivf" {
  if (asked === "ivf") return "ivf";
  const approx = asked === "approx" || (asked === "auto" && nCells > KNN_EXACT_MAX_CELLS);
  if (!approx) return "exact";
  return hasGpu && nPcs <= 256 ? "ivf" : "nn-descent";
}

export interface AnalyzeHooks {
  /** Memoize step results here (see cache.ts); a step whose key is present is not recomputed. */
  cache?: StepCache;
  /** Stops the run with the signal's reason: between steps, and between blocks in the blocks route. */
  signal?: AbortSignal;
  onProgress?: (ev: ProgressEvent) => void;
  /** Run the steps that have WGSL kernels on this device; others (and all, if absent) on the CPU. */
  gpu?: Gpu;
  /** One-line notices (e.g. a device lost mid-run). */
  warn?: (msg: string) => void;
  /** Called when a step finishes. */
  onStep?: (rec: StepRecord) => void;
  /** User-supplied grouping for rank_genes_groups: barcode → group name. */
  groups?: Map<string, string>;
}

export interface AnalyzeOutput {
  result: AnalysisResult;
  steps: StepRecord[];
  nCells: number;
  nGenes: number;
  nClusters: number;
  /** Per-cell outputs the Arrow table and tests need without digging into `result`. */
  clusters: Int32Array;
  clusterNames: string[];
  pcaScores: Float32Array;
  umap: Float32Array;
  knn: Knn;
  knnMethod: "exact" | "nn-descent" | "ivf";
  /** 1 for exact kNN; for NN-descent, recall against exact neighbours of a sample of cells. */
  knnRecallEstimate: number;
  hvgMask: Uint8Array;
  varianceRatio: Float64Array;
  /** Nonzeros of the QC-passing counts, and of their HVG columns. */
  nnz: number;
  nnzHvg: number;
  /** Whole matrices or blocks from compact counts, and the estimate behind the choice. */
  memoryPlan: MemoryPlan;
}

/** Numbered labels → string categories ("0", "1", …), codes unchanged. */
function categoryColumn(labels: Int32Array): { column: Column; names: string[] } {
  let max = -1;
  for (const l of labels) if (l > max) max = l;
  const names = Array.from({ length: max + 1 }, (_, i) => String(i));
  return { column: { kind: "category", codes: labels, categories: names }, names };
}

/**
 * Runs the analysis. A CountCellMatrix input (compact counts) is filtered in place when the plan
 * works in blocks: the caller must not use its arrays afterwards.
 */
export async function analyze(input: CellMatrix | CountCellMatrix, p: AnalyzeParams, hooks: AnalyzeHooks = {}): Promise<AnalyzeOutput> {
  const steps: StepRecord[] = [];
  const gpu = hooks.gpu;
  /**
   * Runs one step: its GPU twin when a device is in hand and still alive, else the CPU twin.
   * A device lost before or during the step falls back to the CPU (gpuOrCpu warns once).
   */
  let warnedLost = false;
  const t0Run = performance.now();
  const progress = (name: string, phase: ProgressEvent["phase"]) => {
    const finished = steps.length;
    const elapsed = performance.now() - t0Run;
    const fraction = finished / STEP_COUNT;
    hooks.onProgress?.({
      step: name,
      phase,
      index: phase === "start" ? finished : finished - 1,
      total: STEP_COUNT,
      fraction,
      etaMs: finished > 0 ? (elapsed / fraction) * (1 - fraction) : undefined,
    });
  };
  const backendTag = gpu ? "webgpu" : "cpu";
  const inputKey = hooks.cache ? contentHash(input) : "";
  const step = async <T>(
    name: string,
    key: string,
    cpu: () => T | Promise<T>,
    onGpu?: (gpu: Gpu) => Promise<T>,
  ): Promise<T> => {
    // Yield first, so an abort from outside (Ctrl-C) lands before the next step starts.
    await betweenBlocks(hooks.signal);
    progress(name, "start");
    const t0 = performance.now();
    if (hooks.cache) {
      const hit = (await hooks.cache.get(key)) as { value: T; backend: StepRecord["backend"] } | undefined;
      if (hit) {
        const rec: StepRecord = { step: name, ms: performance.now() - t0, backend: hit.backend, cached: true };
        steps.push(rec);
        hooks.onStep?.(rec);
        progress(name, "end");
        return hit.value;
      }
    }
    let backend: StepRecord["backend"] = "cpu";
    let out: T | undefined;
    let done = false;
    const fellBack = (why: string) => {
      if (warnedLost) return;
      warnedLost = true;
      (hooks.warn ?? console.warn)(`cellgpu: ${why}; ${name} and later steps run on the CPU`);
    };
    if (gpu && onGpu && gpu.lost) fellBack(gpu.lostMessage);
    if (gpu && onGpu && !gpu.lost) {
      try {
        out = await onGpu(gpu);
        backend = "webgpu";
        done = true;
      } catch (e) {
        if (e instanceof GpuLostError || gpu.lost) {
          fellBack(gpu.lostMessage || `WebGPU device lost: ${(e as Error).message}`);
        } else if (e instanceof GpuError) {
          // A kernel that fails validation or does not fit the device: this step only on the CPU.
          (hooks.warn ?? console.warn)(`cellgpu: ${name} on WebGPU failed (${e.message}); running it on the CPU`);
        } else throw e;
      }
    }
    if (!done) out = await cpu();
    const rec: StepRecord = { step: name, ms: performance.now() - t0, backend };
    if (hooks.cache) await hooks.cache.set(key, { value: out, backend });
    steps.push(rec);
    hooks.onStep?.(rec);
    progress(name, "end");
    return out as T;
  };
  /** Step keys: the parameters each step depends on, chained through its inputs' keys. */
  const keyOf = (name: string, params: object, deps: string[]) =>
    hooks.cache ? stepKey(name, { ...params, backend: backendTag }, deps) : "";

  const checkCellCount = (n: number) => {
    if (n < Math.max(p.nNeighbors, p.nComps + 1)) {
      throw new PipelineError(
        `${input.source}: only ${n} cells passed QC; need more than ${Math.max(p.nNeighbors, p.nComps)} for ${p.nComps} PCs and ${p.nNeighbors} neighbours`,
      );
    }
  };
  const countStepsWhole = async (counts0: Csr) => {
    // --- QC: scanpy filters cells on min_genes then genes on min_cells; Seurat the other way round.
    // The filters are host-side subsetting; the per-cell metrics are the op with a GPU twin.
    const qcStep = async (metrics: (X: Csr, mito: Uint8Array) => CellQc | Promise<CellQc>) => {
      let X = counts0;
      let obsT: Table = input.obs;
      let varT: Table = input.var;
      const filterCells = () => {
        const keep = new Uint8Array(X.nRows);
        for (let r = 0; r < X.nRows; r++) {
          let genes = 0;
          for (let t = X.indptr[r]; t < X.indptr[r + 1]; t++) if (X.data[t] !== 0) genes++;
          keep[r] = genes >= p.minGenes ? 1 : 0;
        }
        X = subsetRows(X, keep);
        obsT = subsetTable(obsT, keep);
      };
      const filterGenes = () => {
        const cellsPerGene = cellsPerGeneCpu(X);
        const keep = cellsPerGene.map((c) => (c >= p.minCells ? 1 : 0));
        X = subsetCols(X, keep);
        varT = subsetTable(varT, keep);
        // filter_genes stores each kept gene's cell count (the cells did not change).
        varT.columns.set("n_cells", { kind: "number", values: cellsPerGene.filter((_, j) => keep[j]) });
      };
      if (p.preset === "seurat") {
        filterGenes();
        filterCells();
      } else {
        filterCells();
        filterGenes();
      }
      if (X.nRows === 0) {
        throw new PipelineError(`${input.source}: no cells left after filtering (min_genes ${p.minGenes})`);
      }
      const mito = mitoMask(varT.index);
      let m = await metrics(X, mito);
      const keep = new Uint8Array(X.nRows);
      for (let i = 0; i < X.nRows; i++) {
        keep[i] =
          (p.maxGenes === undefined || m.nGenesByCounts[i] < p.maxGenes) &&
          (p.maxPctMt === undefined || m.pctCountsMt[i] < p.maxPctMt)
            ? 1
            : 0;
      }
      X = subsetRows(X, keep);
      obsT = subsetTable(obsT, keep);
      if (X.nRows === 0) {
        throw new PipelineError(
          `${input.source}: no cells left after QC (max_genes ${p.maxGenes ?? "none"}, max_pct_mt ${p.maxPctMt ?? "none"})`,
        );
      }
      m = {
        nGenesByCounts: m.nGenesByCounts.filter((_, i) => keep[i]),
        totalCounts: m.totalCounts.filter((_, i) => keep[i]),
        pctCountsMt: m.pctCountsMt.filter((_, i) => keep[i]),
      };
      return { counts: X, obs: obsT, vars: varT, qc: m };
    };
    const { counts, obs, vars, qc } = await step(
      "qc",
      qcKey,
      () => qcStep(cellQcCpu),
      (g) => qcStep((X, mito) => cellQcGpu(g, X, mito)),
    );
    checkCellCount(counts.nRows);

    const logNorm = await step(
      "normalize",
      normKey,
      () => normalizeTotalLog1pCpu(counts, p.targetSum),
      (g) => normalizeTotalLog1pGpu(g, counts, p.targetSum),
    );

    const hvg = await step(
      "hvg",
      hvgKey,
      () => highlyVariableGenesCpu({ logNorm, counts }, hvgOpts),
      async (g) => (await highlyVariableGenesGpu(g, { logNorm, counts }, hvgOpts)).result,
    );
    return { counts, obs, vars, qc, logNorm, hvg, Xh: subsetCols(logNorm, hvg.highlyVariable) };
  };

  const X0 = input.X;
  if (X0.nRows === 0 || X0.nCols === 0) {
    throw new PipelineError(`${input.source}: the matrix is empty (${X0.nRows} cells × ${X0.nCols} features)`);
  }
  const plan = planMemory(
    {
      nCells: X0.nRows,
      nGenes: X0.nCols,
      nnz: X0.indptr[X0.nRows],
      compactBytesPerNnz: (X0.nCols <= 65536 ? 2 : 4) + (isCountMatrix(X0) ? X0.data.BYTES_PER_ELEMENT : 2),
    },
    p.maxMemory,
  );
  if (plan.estimatedBytes > plan.maxMemory) {
    (hooks.warn ?? console.warn)(
      `cellgpu: this input needs an estimated ${(plan.estimatedBytes / 2 ** 30).toFixed(1)} GiB even in blocks, more than --max-memory ${(plan.maxMemory / 2 ** 30).toFixed(1)} GiB; going on`,
    );
  }
  const blocks = plan.route === "blocks";
  const qcKey = keyOf(
    "qc",
    { preset: p.preset, minGenes: p.minGenes, minCells: p.minCells, maxGenes: p.maxGenes ?? null, maxPctMt: p.maxPctMt ?? null, route: plan.route },
    [inputKey],
  );
  const normKey = keyOf("normalize", { targetSum: p.targetSum }, [qcKey]);
  const hvgKey = keyOf("hvg", { flavor: p.flavor, nTopGenes: p.nTopGenes }, [normKey]);
  const pcaKey = keyOf("pca", { nComps: p.nComps, maxValue: p.maxValue ?? null, seed: p.seed }, [hvgKey]);
  const knnKey = keyOf("neighbors_knn", { nPcs: p.nPcs, nNeighbors: p.nNeighbors, knnMethod: p.knnMethod }, [pcaKey]);
  const graphKey = keyOf("neighbors_graph", { graph: p.graph, snnPrune: p.snnPrune }, [knnKey]);
  const clusterKey = keyOf(p.clustering, { resolution: p.resolution, seed: p.seed, nStarts: p.nStarts }, [graphKey]);
  const umapKey = keyOf("umap", { minDist: p.minDist, spread: p.spread, seed: p.seed }, [graphKey]);
  const hvgOpts = { flavor: p.flavor, nTopGenes: p.nTopGenes };

  // The count steps, whole (Csr) or in blocks from compact counts (plan.ts); both give the same numbers.
  let obs: Table;
  let vars: Table;
  let qc: CellQc;
  let nCells: number;
  let nGenes: number;
  let hvg: HvgResult;
  let Xh: Csr;
  let xOut: SparseOut;
  let countsOut: Csr | CountMatrix;
  let markerInput: { whole: Csr } | { counts: CountMatrix; factors: Float32Array };
  if (!blocks) {
    const whole = await countStepsWhole(isCountMatrix(X0) ? countsToCsr(X0) : X0);
    ({ obs, vars, qc, hvg, Xh } = whole);
    nCells = whole.counts.nRows;
    nGenes = whole.counts.nCols;
    xOut = whole.logNorm;
    countsOut = whole.counts;
    markerInput = { whole: whole.logNorm };
  } else {
    const M0 = isCountMatrix(X0) ? X0 : compactCounts(X0);
    const q = await step("qc", qcKey, () => qcOnBlocks(M0, input.obs, input.var, p, input.source, plan.blockNnz, hooks.signal));
    ({ obs, vars, qc } = q);
    const counts = q.counts;
    nCells = counts.nRows;
    nGenes = counts.nCols;
    checkCellCount(nCells);
    const factors = await step("normalize", normKey, () => normalizeFactorsCpu(counts, p.targetSum));
    hvg = await step("hvg", hvgKey, () => hvgOnBlocks(counts, factors, hvgOpts, plan.blockNnz, hooks.signal));
    Xh = logNormColumns(counts, factors, hvg.highlyVariable);
    xOut = logNormRowBlocks(counts, factors, plan.blockNnz);
    countsOut = counts;
    markerInput = { counts, factors };
  }
  const hvgIdx: number[] = [];
  hvg.highlyVariable.forEach((h: number, j: number) => h && hvgIdx.push(j));
  const pcaOpts = { nComps: p.nComps, maxValue: p.maxValue, seed: p.seed };
  const pca = await step(
    "pca",
    pcaKey,
    () => pcaCpu(Xh, pcaOpts),
    (g) => pcaGpu(g, Xh, pcaOpts),
  );
  const k = pca.variance.length;

  const nPcs = Math.min(p.nPcs, k);
  const pts = new Float32Array(nCells * nPcs);
  for (let i = 0; i < nCells; i++) pts.set(pca.scores.subarray(i * k, i * k + nPcs), i * nPcs);
  const method = chooseKnnMethod(p.knnMethod, nCells, nPcs, gpu !== undefined && !gpu.lost);
  const approx = method !== "exact";
  const ivfOpts = { seed: p.seed };
  const knn = await step(
    "neighbors_knn",
    knnKey,
    () =>
      method === "ivf"
        ? knnIvfCpu(pts, nCells, nPcs, p.nNeighbors, ivfOpts)
        : method === "nn-descent"
          ? knnApproxCpu(pts, nCells, nPcs, p.nNeighbors, { seed: p.seed })
          : knnExactCpu(pts, nCells, nPcs, p.nNeighbors),
    method === "ivf"
      ? (g) => knnIvfGpu(g, pts, nCells, nPcs, p.nNeighbors, ivfOpts)
      : method === "exact"
        ? (g) => knnExactGpu(g, pts, nCells, nPcs, p.nNeighbors)
        : undefined,
  );
  const knnRecall = approx ? sampledKnnRecall(pts, nCells, nPcs, knn) : 1;

  const { connectivities, distances, clusterGraph } = await step(
    "neighbors_graph",
    graphKey,
    () => {
      const conn = fuzzySimplicialSetCpu(knn);
      const graph: Csr = p.graph === "snn" ? snnGraphCpu(knn, p.snnPrune) : conn;
      return { connectivities: conn, distances: knnDistancesCsr(knn), clusterGraph: graph };
    },
    async (g) => {
      const conn = await fuzzySimplicialSetGpu(g, knn);
      const graph: Csr = p.graph === "snn" ? await snnGraphGpu(g, knn, p.snnPrune) : conn;
      return { connectivities: conn, distances: knnDistancesCsr(knn), clusterGraph: graph };
    },
  );

  const clusterOpts = { resolution: p.resolution, seed: p.seed, nStarts: p.nStarts };
  const clusters = await step(
    p.clustering,
    clusterKey,
    () => (p.clustering === "leiden" ? leidenCpu(clusterGraph, clusterOpts) : louvainCpu(clusterGraph, clusterOpts)),
    (g) => (p.clustering === "leiden" ? leidenGpu(g, clusterGraph, clusterOpts) : louvainGpu(g, clusterGraph, clusterOpts)),
  );
  const { column: clusterColumn, names: clusterNames } = categoryColumn(clusters);

  const umapOpts = { minDist: p.minDist, spread: p.spread, seed: p.seed };
  const umap = await step(
    "umap",
    umapKey,
    () => umapLayoutCpu(connectivities, umapOpts),
    (g) => umapLayoutGpu(g, connectivities, umapOpts),
  );

  // Markers: the user's grouping when given, else the clusters.
  let groupLabels = clusters;
  let groupNames = clusterNames;
  let groupby: string = p.clustering;
  if (hooks.groups) {
    const names = [...new Set(hooks.groups.values())].sort();
    const code = new Map(names.map((n, i) => [n, i]));
    groupLabels = Int32Array.from(obs.index, (b) => code.get(hooks.groups!.get(b) ?? "") ?? -1);
    if (!groupLabels.some((g) => g >= 0)) {
      throw new PipelineError("none of the barcodes in the groups file are among the cells that passed QC");
    }
    groupNames = names;
    groupby = "groups";
  }
  const markersKey = keyOf(
    "rank_genes_groups",
    { method: p.markerMethod, tieCorrect: p.tieCorrect, groupby, groups: hooks.groups ? [...hooks.groups.entries()] : null },
    [normKey, hooks.groups ? qcKey : clusterKey],
  );
  const markerOpts = { method: p.markerMethod, tieCorrect: p.tieCorrect };
  const markers = await step(
    "rank_genes_groups",
    markersKey,
    () => {
      if ("whole" in markerInput) return rankGenesGroupsCpu(markerInput.whole, groupLabels, groupNames, markerOpts);
      // Blocks of genes widened from the compact counts, each about plan.blockNnz nonzeros.
      const { counts, factors } = markerInput;
      const blockGenes = Math.max(1, Math.floor((nGenes * plan.blockNnz) / Math.max(1, counts.indptr[nCells])));
      return rankGenesGroupsBlockedCpu(
        nCells,
        nGenes,
        (j0, j1) => logNormGeneBlock(counts, factors, j0, j1),
        blockGenes,
        groupLabels,
        groupNames,
        markerOpts,
      );
    },
    "whole" in markerInput ? (g) => rankGenesGroupsGpu(g, (markerInput as { whole: Csr }).whole, groupLabels, groupNames, markerOpts) : undefined,
  );

  // --- Assemble AnnData.
  obs.columns.set("n_genes_by_counts", { kind: "number", values: qc.nGenesByCounts });
  obs.columns.set("total_counts", { kind: "number", values: Float32Array.from(qc.totalCounts) });
  obs.columns.set("pct_counts_mt", { kind: "number", values: Float32Array.from(qc.pctCountsMt) });
  obs.columns.set(p.clustering, clusterColumn);
  if (hooks.groups) obs.columns.set("groups", { kind: "category", codes: groupLabels, categories: groupNames });

  vars.columns.set("highly_variable", { kind: "bool", values: hvg.highlyVariable });
  vars.columns.set("means", { kind: "number", values: hvg.means });
  vars.columns.set("dispersions", { kind: "number", values: hvg.dispersions });
  vars.columns.set("dispersions_norm", { kind: "number", values: hvg.dispersionsNorm });
  if (hvg.variances) vars.columns.set("variances", { kind: "number", values: hvg.variances });
  if (hvg.variancesNorm) vars.columns.set("variances_norm", { kind: "number", values: hvg.variancesNorm });
  if (hvg.highlyVariableRank) vars.columns.set("highly_variable_rank", { kind: "number", values: hvg.highlyVariableRank });

  // varm PCs: genes × comps, zero rows for genes outside the HVG set (scanpy's mask_var layout).
  const loadings = new Float32Array(nGenes * k);
  hvgIdx.forEach((g, h) => {
    for (let c = 0; c < k; c++) loadings[g * k + c] = pca.components[c * hvgIdx.length + h];
  });

  const uns: { [key: string]: UnsValue } = {
    hvg: { flavor: p.flavor },
    pca: {
      variance: pca.variance,
      variance_ratio: pca.varianceRatio,
      params: { zero_center: true, use_highly_variable: true, mask_var: "highly_variable" },
    },
    neighbors: {
      connectivities_key: "connectivities",
      distances_key: "distances",
      params: {
        n_neighbors: p.nNeighbors,
        method: "umap",
        metric: "euclidean",
        n_pcs: nPcs,
        random_state: p.seed,
        knn_method: method,
        knn_recall_estimate: knnRecall,
      },
    },
    [p.clustering]: { params: { resolution: p.resolution, random_state: p.seed, n_iterations: -1, n_starts: p.nStarts } },
    umap: { params: { ...findAbParams(p.spread, p.minDist) } },
    rank_genes_groups: markersToUns(markers, vars.index, groupby, { method: p.markerMethod, tieCorrect: p.tieCorrect }),
  };

  const result: AnalysisResult = {
    X: xOut,
    layers: new Map([["counts", countsOut]]),
    obs,
    var: vars,
    obsm: new Map([
      ["X_pca", { nRows: nCells, nCols: k, data: pca.scores }],
      ["X_umap", { nRows: nCells, nCols: 2, data: umap }],
    ]),
    varm: new Map([["PCs", { nRows: nGenes, nCols: k, data: loadings }]]),
    obsp: new Map([
      ["distances", distances],
      ["connectivities", connectivities],
      ...(p.graph === "snn" ? ([["snn", clusterGraph]] as [string, Csr][]) : []),
    ]),
    uns,
  };
  return {
    result,
    steps,
    nCells,
    nGenes,
    nClusters: clusterNames.length,
    clusters,
    clusterNames,
    pcaScores: pca.scores,
    umap,
    knn,
    knnMethod: method,
    knnRecallEstimate: knnRecall,
    hvgMask: hvg.highlyVariable,
    varianceRatio: pca.varianceRatio,
    nnz: countsOut.indptr[nCells],
    nnzHvg: Xh.indptr[nCells],
    memoryPlan: plan,
  };
}
