/**
 * The reference run's input to a step: its QC-passing cells (barcode-file order) and the genes
 * filter_genes(min_cells=3) kept on the cells that passed filter_cells(min_genes=200), as raw
 * counts and log-normalized (normalize_total 1e4 + log1p); and the reference's Leiden labels.
 */
import { join } from "node:path";
import { subsetCols, subsetRows, type Csr } from "../../src/core/csr.js";
import { readTenxMtxDir } from "../../src/io/mtx.js";
import { normalizeTotalLog1pCpu } from "../../src/ops/normalize.js";
import { cellsPerGeneCpu } from "../../src/ops/qc.js";
import { datasetDir, readTsv, referenceDir } from "./reference.js";

export interface ReferenceInput {
  /** All barcodes × all features, as read. */
  raw: Csr;
  /** Barcodes of the kept cells. */
  barcodes: string[];
  counts: Csr;
  logNorm: Csr;
  /** 0-based features.tsv row of each kept gene. */
  featureIndex: number[];
  geneNames: string[];
}

export function referenceQcInput(dataset: string): ReferenceInput {
  const cm = readTenxMtxDir(datasetDir(dataset));
  const qc = readTsv(join(referenceDir(dataset), "qc.tsv.gz"));
  const pos = new Map(cm.obs.index.map((b, i) => [b, i]));
  const keepMin = new Uint8Array(cm.X.nRows);
  const keepQc = new Uint8Array(cm.X.nRows);
  const passMin = qc.col("pass_min_genes");
  const passQc = qc.col("pass_qc");
  qc.col("barcode").forEach((b, i) => {
    const r = pos.get(b);
    if (r === undefined) throw new Error(`${dataset}: reference barcode ${b} is not in the dataset`);
    if (passMin[i] === "True") keepMin[r] = 1;
    if (passQc[i] === "True") keepQc[r] = 1;
  });
  const geneKeep = Uint8Array.from(cellsPerGeneCpu(subsetRows(cm.X, keepMin)), (v) => (v >= 3 ? 1 : 0));
  const featureIndex: number[] = [];
  geneKeep.forEach((g, j) => g && featureIndex.push(j));
  const counts = subsetCols(subsetRows(cm.X, keepQc), geneKeep);
  return {
    raw: cm.X,
    barcodes: cm.obs.index.filter((_, r) => keepQc[r]),
    counts,
    logNorm: normalizeTotalLog1pCpu(counts, 1e4),
    featureIndex,
    geneNames: featureIndex.map((j) => cm.var.index[j]),
  };
}

/** The reference's Leiden labels for these barcodes, as codes into groupNames ("0", "1", … numerically sorted). */
export function referenceLeidenLabels(dataset: string, barcodes: string[]): { labels: Int32Array; groupNames: string[] } {
  const cl = readTsv(join(referenceDir(dataset), "clusters.tsv.gz"));
  const leiden = new Map(cl.col("barcode").map((b, i) => [b, cl.col("leiden")[i]] as const));
  const groupNames = [...new Set(leiden.values())].sort((a, b) => Number(a) - Number(b));
  const code = new Map(groupNames.map((g, i) => [g, i] as const));
  return { labels: Int32Array.from(barcodes, (b) => code.get(leiden.get(b)!)!), groupNames };
}
