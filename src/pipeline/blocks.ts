/**
 * The count-matrix steps of a run too large to hold whole (see plan.ts): QC, normalize, HVG, the
 * HVG matrix for PCA and the log-normalized X, worked from compact counts (core/counts.ts) a
 * block of rows at a time. Each gives exactly the numbers of the whole-matrix route: the same
 * per-row formulas, and per-gene sums accumulated over the blocks in row order.
 */
import type { Table } from "../core/cellMatrix.js";
import { subsetTable } from "../core/cellMatrix.js";
import { countsRows, filterCountsInPlace, keepToColMap, rowRangesByNnz, type CountMatrix } from "../core/counts.js";
import type { Csr } from "../core/csr.js";
import { hvgFromMoments, hvgMomentsTransform, seuratV3Blocks, type HvgOptions, type HvgResult } from "../ops/hvg.js";
import { FeatureMoments, logNormRowsCpu } from "../ops/normalize.js";
import { cellQcCpu, mitoMask, type CellQc } from "../ops/qc.js";
import { PipelineError } from "./errors.js";
import type { AnalyzeParams } from "./params.js";
import type { RowBlocks } from "./result.js";

/**
 * Called between blocks: yields to the event loop (so a Ctrl-C or an abort() can land) and
 * throws the signal's reason once it is aborted — cancellation stops within one block.
 */
export async function betweenBlocks(signal?: AbortSignal): Promise<void> {
  if (!signal) return;
  await new Promise((resolve) => setImmediate(resolve));
  signal.throwIfAborted();
}

export interface QcOnBlocks {
  counts: CountMatrix;
  obs: Table;
  vars: Table;
  qc: CellQc;
}

/** Nonzero entries per row (columns with colMap −1 not counted). */
function genesPerRow(M: CountMatrix, colMap?: Int32Array): Int32Array {
  const out = new Int32Array(M.nRows);
  for (let r = 0; r < M.nRows; r++) {
    let g = 0;
    const b = M.indptr[r + 1];
    for (let k = M.indptr[r]; k < b; k++) if (M.data[k] !== 0 && (!colMap || colMap[M.indices[k]] >= 0)) g++;
    out[r] = g;
  }
  return out;
}

/** Nonzero entries per column over the rows kept (null: all). */
function cellsPerGene(M: CountMatrix, keepRows: Uint8Array | null): Int32Array {
  const out = new Int32Array(M.nCols);
  for (let r = 0; r < M.nRows; r++) {
    if (keepRows && !keepRows[r]) continue;
    const b = M.indptr[r + 1];
    for (let k = M.indptr[r]; k < b; k++) if (M.data[k] !== 0) out[M.indices[k]]++;
  }
  return out;
}

/**
 * filter_cells / filter_genes in the preset's order, the QC metrics and the max_genes / pct_mt
 * filter, as the whole route does them. M is filtered in place and must not be used afterwards.
 */
export async function qcOnBlocks(
  M0: CountMatrix,
  obs0: Table,
  var0: Table,
  p: AnalyzeParams,
  source: string,
  blockNnz: number,
  signal?: AbortSignal,
): Promise<QcOnBlocks> {
  let keepCells: Uint8Array;
  let keepGenes: Uint8Array;
  let nCells: Int32Array;
  if (p.preset === "seurat") {
    nCells = cellsPerGene(M0, null);
    keepGenes = Uint8Array.from(nCells, (c) => (c >= p.minCells ? 1 : 0));
    keepCells = Uint8Array.from(genesPerRow(M0, keepToColMap(keepGenes).colMap), (g) => (g >= p.minGenes ? 1 : 0));
  } else {
    keepCells = Uint8Array.from(genesPerRow(M0), (g) => (g >= p.minGenes ? 1 : 0));
    if (!keepCells.some((k) => k)) throw new PipelineError(`${source}: no cells left after filtering (min_genes ${p.minGenes})`);
    nCells = cellsPerGene(M0, keepCells);
    keepGenes = Uint8Array.from(nCells, (c) => (c >= p.minCells ? 1 : 0));
  }
  if (!keepCells.some((k) => k)) throw new PipelineError(`${source}: no cells left after filtering (min_genes ${p.minGenes})`);
  let M = filterCountsInPlace(M0, keepCells, keepGenes);
  let obs = subsetTable(obs0, keepCells);
  const vars = subsetTable(var0, keepGenes);
  vars.columns.set("n_cells", { kind: "number", values: nCells.filter((_, j) => keepGenes[j]) });

  const mito = mitoMask(vars.index);
  const m: CellQc = { nGenesByCounts: new Int32Array(M.nRows), totalCounts: new Float64Array(M.nRows), pctCountsMt: new Float64Array(M.nRows) };
  for (const [r0, r1] of rowRangesByNnz(M.indptr, M.nRows, blockNnz)) {
    await betweenBlocks(signal);
    const b = cellQcCpu(countsRows(M, r0, r1), mito);
    m.nGenesByCounts.set(b.nGenesByCounts, r0);
    m.totalCounts.set(b.totalCounts, r0);
    m.pctCountsMt.set(b.pctCountsMt, r0);
  }
  const keep = new Uint8Array(M.nRows);
  for (let i = 0; i < M.nRows; i++) {
    keep[i] =
      (p.maxGenes === undefined || m.nGenesByCounts[i] < p.maxGenes) && (p.maxPctMt === undefined || m.pctCountsMt[i] < p.maxPctMt) ? 1 : 0;
  }
  if (!keep.some((k) => k)) {
    throw new PipelineError(`${source}: no cells left after QC (max_genes ${p.maxGenes ?? "none"}, max_pct_mt ${p.maxPctMt ?? "none"})`);
  }
  M = filterCountsInPlace(M, keep, null);
  obs = subsetTable(obs, keep);
  const qc: CellQc = {
    nGenesByCounts: m.nGenesByCounts.filter((_, i) => keep[i]),
    totalCounts: m.totalCounts.filter((_, i) => keep[i]),
    pctCountsMt: m.pctCountsMt.filter((_, i) => keep[i]),
  };
  return { counts: M, obs, vars, qc };
}

/** highly_variable_genes from row blocks: log-normalized moments, or seurat_v3 on the counts. */
export async function hvgOnBlocks(M: CountMatrix, factors: Float32Array, opts: HvgOptions, blockNnz: number, signal?: AbortSignal): Promise<HvgResult> {
  const ranges = rowRangesByNnz(M.indptr, M.nRows, blockNnz);
  if (opts.flavor === "seurat_v3") {
    return seuratV3Blocks(M.nRows, M.nCols, () => ranges.map(([r0, r1]) => countsRows(M, r0, r1)).values(), opts.nTopGenes);
  }
  const moments = new FeatureMoments(M.nCols);
  const f = hvgMomentsTransform(opts.flavor);
  for (const [r0, r1] of ranges) {
    await betweenBlocks(signal);
    moments.add(logNormRowsCpu(M, factors, r0, r1), f);
  }
  return hvgFromMoments(moments.result(), opts);
}

/** Log-normalized values of the masked genes for all cells, as subsetCols(logNorm, mask) gives them. */
export function logNormColumns(M: CountMatrix, factors: Float32Array, mask: Uint8Array): Csr {
  const { colMap, nKept } = keepToColMap(mask);
  return logNormRowsCpu(M, factors, 0, M.nRows, colMap, nKept);
}

/** Genes [j0, j1) of the log-normalized matrix, columns renumbered from 0. */
export function logNormGeneBlock(M: CountMatrix, factors: Float32Array, j0: number, j1: number): Csr {
  const colMap = new Int32Array(M.nCols).fill(-1);
  for (let j = j0; j < j1; j++) colMap[j] = j - j0;
  return logNormRowsCpu(M, factors, 0, M.nRows, colMap, j1 - j0);
}

/** The log-normalized matrix as row blocks, for the writer. */
export function logNormRowBlocks(M: CountMatrix, factors: Float32Array, blockNnz: number): RowBlocks {
  return {
    kind: "rowBlocks",
    nRows: M.nRows,
    nCols: M.nCols,
    nnz: M.indptr[M.nRows],
    *blocks() {
      for (const [r0, r1] of rowRangesByNnz(M.indptr, M.nRows, blockNnz)) yield logNormRowsCpu(M, factors, r0, r1);
    },
  };
}
