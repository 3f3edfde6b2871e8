/**
 * Accuracy columns: a run's outputs against the scanpy_like reference (or against another
 * backend's outputs), on the cells both kept, matched by barcode. Uses src/metrics.
 */
import { join } from "node:path";
import { adjustedRandIndex, jaccard, knnRecall, subspaceSimilarity, trustworthiness } from "../src/metrics/index.js";
import type { ChildOutputs } from "./child.js";
import { readTsv } from "./datasets.js";

/** The parts of a run that can be compared with another run or the reference. */
export interface Comparable {
  barcodes: string[];
  hvgFeatureIndex: number[];
  /** nCells × 10 row-major. */
  pcs10: number[];
  knnK: number;
  /** nCells × knnK row-major, indices into this run's cells, self first. */
  knn: number[];
  clusters: number[];
  /** per cluster, feature_index of the top 25 markers. */
  markersTop25: number[][];
}

export interface Agreement {
  hvg_jaccard: number;
  pc10_subspace: number;
  knn15_recall: number;
  ari_clusters: number;
  marker_top25_overlap: number;
  common_cells: number;
}

export function loadReference(refDir: string): Comparable {
  const pca = readTsv(join(refDir, "pca.tsv.gz"));
  const barcodes = pca.col("barcode");
  const pcCols = Array.from({ length: 10 }, (_, c) => pca.header.indexOf(`PC_${c + 1}`));
  const pcs10: number[] = [];
  for (const r of pca.rows) for (const c of pcCols) pcs10.push(Number(r[c]));
  const knnT = readTsv(join(refDir, "knn_indices.tsv.gz"));
  const nnCols = knnT.header.map((h, i) => [h, i] as const).filter(([h]) => h.startsWith("nn_")).map(([, i]) => i);
  const knn: number[] = [];
  for (const r of knnT.rows) for (const c of nnCols) knn.push(Number(r[c]));
  const cl = readTsv(join(refDir, "clusters.tsv.gz"));
  const clusterOf = new Map(cl.rows.map((r) => [r[0], Number(r[1])] as [string, number]));
  const markers = readTsv(join(refDir, "markers.tsv.gz"));
  const gI = markers.header.indexOf("group");
  const rI = markers.header.indexOf("rank");
  const fI = markers.header.indexOf("feature_index");
  const top: number[][] = [];
  for (const r of markers.rows) {
    if (Number(r[rI]) > 25) continue;
    const g = Number(r[gI]);
    (top[g] ??= []).push(Number(r[fI]));
  }
  return {
    barcodes,
    hvgFeatureIndex: readTsv(join(refDir, "hvg.tsv")).col("feature_index").map(Number),
    pcs10,
    knnK: nnCols.length,
    knn,
    clusters: barcodes.map((b) => clusterOf.get(b) ?? -1),
    markersTop25: top.map((t) => t ?? []),
  };
}

/** Agreement of run `a` with `b` (the reference or the CPU backend). */
export function compare(a: Comparable, b: Comparable): Agreement {
  const posA = new Map(a.barcodes.map((x, i) => [x, i]));
  const common: [number, number][] = [];
  b.barcodes.forEach((x, j) => {
    const i = posA.get(x);
    if (i !== undefined) common.push([i, j]);
  });
  const n = common.length;
  const pa: number[] = [];
  const pb: number[] = [];
  for (const [i, j] of common) {
    for (let c = 0; c < 10; c++) {
      pa.push(a.pcs10[i * 10 + c]);
      pb.push(b.pcs10[j * 10 + c]);
    }
  }
  // kNN: a's neighbour lists translated into b's cell numbering (cells b lacks become −1)
  const aToB = new Int32Array(a.barcodes.length).fill(-1);
  for (const [i, j] of common) aToB[i] = j;
  const k = Math.min(15, a.knnK, b.knnK);
  const found: number[] = [];
  const truth: number[] = [];
  for (const [i, j] of common) {
    for (let t = 0; t < k; t++) {
      found.push(aToB[a.knn[i * a.knnK + t]]);
      truth.push(b.knn[j * b.knnK + t]);
    }
  }
  const ca = common.map(([i]) => a.clusters[i]);
  const cb = common.map(([, j]) => b.clusters[j]);
  // markers: each cluster of a against the cluster of b sharing most of its cells
  const overlaps: number[] = [];
  const nA = Math.max(...ca) + 1;
  for (let g = 0; g < nA; g++) {
    const votes = new Map<number, number>();
    ca.forEach((x, t) => x === g && votes.set(cb[t], (votes.get(cb[t]) ?? 0) + 1));
    let best = -1;
    let bestN = 0;
    for (const [h, c] of votes) if (c > bestN || (c === bestN && h < best)) [best, bestN] = [h, c];
    const mine = a.markersTop25[g];
    const theirs = b.markersTop25[best];
    if (!mine || !theirs || theirs.length === 0) continue;
    const s = new Set(theirs);
    overlaps.push(mine.filter((f) => s.has(f)).length / Math.max(mine.length, theirs.length));
  }
  return {
    hvg_jaccard: jaccard(a.hvgFeatureIndex, b.hvgFeatureIndex),
    pc10_subspace: subspaceSimilarity(pa, pb, n, 10),
    knn15_recall: knnRecall(found, truth, n, k),
    ari_clusters: adjustedRandIndex(ca, cb),
    marker_top25_overlap: overlaps.length ? overlaps.reduce((s, x) => s + x, 0) / overlaps.length : NaN,
    common_cells: n,
  };
}

/** ARI of the run's clusters against dataset labels (or simulator truth), on labelled cells. */
export function labelAri(o: ChildOutputs, labelsPath: string, column: string): number {
  const t = readTsv(labelsPath);
  const values = t.col(column);
  const lab = new Map(t.rows.map((r, i) => [r[0], values[i]] as [string, string]));
  const codes = new Map<string, number>();
  const x: number[] = [];
  const y: number[] = [];
  o.barcodes.forEach((b, i) => {
    const l = lab.get(b);
    if (l === undefined || l === "" || l === "NA") return;
    if (!codes.has(l)) codes.set(l, codes.size);
    x.push(o.clusters[i]);
    y.push(codes.get(l)!);
  });
  return adjustedRandIndex(x, y);
}

/** sklearn trustworthiness (k = 15) of the UMAP against the PCs it was built from, on the dumped subsample. */
export function umapTrust(o: ChildOutputs): number {
  const m = o.trustCells.length;
  const emb = new Float64Array(m * 2);
  o.trustCells.forEach((i, j) => {
    emb[j * 2] = o.umap[i * 2];
    emb[j * 2 + 1] = o.umap[i * 2 + 1];
  });
  return trustworthiness(o.trustPcs, o.nPcs, emb, 2, m, 15);
}
