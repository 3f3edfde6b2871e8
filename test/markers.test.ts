/**
 * Marker genes (rank_genes_groups) against the scanpy-like reference on pbmc3k and kang2018, using
 * the reference's own QC cells and Leiden labels; t-test and the distributions against scipy values.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fromDense, subsetCols, subsetRows, type Csr } from "../src/core/csr.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { normalizeTotalLog1pCpu } from "../src/ops/normalize.js";
import {
  benjaminiHochberg,
  markersToUns,
  normalTwoSidedP,
  rankGenesGroupsCpu,
  studentTwoSidedP,
  type MarkerResult,
} from "../src/ops/markers.js";
import { datasetDir, haveShared, readTsv, referenceDir } from "./helpers/reference.js";

interface Prepared {
  X: Csr;
  featureIndex: Int32Array;
  geneNames: string[];
  labels: Int32Array;
  groupNames: string[];
}

/** The reference's QC cells, log-normalized, on the genes kept by filter_genes(min_cells=3). */
function prepare(dataset: string): Prepared {
  const m = readTenxMtxDir(datasetDir(dataset));
  const qc = readTsv(join(referenceDir(dataset), "qc.tsv.gz"));
  const row = new Map(m.obs.index.map((b, i) => [b, i] as const));
  const barcodes = qc.col("barcode");
  const passMin = qc.col("pass_min_genes");
  const passQc = qc.col("pass_qc");
  const minMask = new Uint8Array(m.X.nRows);
  const qcRows: number[] = [];
  barcodes.forEach((b, i) => {
    const r = row.get(b);
    if (r === undefined) throw new Error(`barcode ${b} not in dataset`);
    if (passMin[i] === "True") minMask[r] = 1;
    if (passQc[i] === "True") qcRows.push(r);
  });
  // filter_genes(min_cells=3) on the cells that passed filter_cells(min_genes=200).
  const cellsPerGene = new Int32Array(m.X.nCols);
  for (let r = 0; r < m.X.nRows; r++) {
    if (!minMask[r]) continue;
    for (let k = m.X.indptr[r]; k < m.X.indptr[r + 1]; k++) if (m.X.data[k] !== 0) cellsPerGene[m.X.indices[k]]++;
  }
  const keepGene = Uint8Array.from(cellsPerGene, (c) => (c >= 3 ? 1 : 0));
  const featureIndex = Int32Array.from(Array.from(keepGene).flatMap((k, j) => (k ? [j] : [])));
  // Rows in the reference's (barcode-file) order.
  const qcMask = new Uint8Array(m.X.nRows);
  for (const r of qcRows) qcMask[r] = 1;
  const X = normalizeTotalLog1pCpu(subsetCols(subsetRows(m.X, qcMask), keepGene), 1e4);
  const keptBarcodes = m.obs.index.filter((_, r) => qcMask[r]);

  const cl = readTsv(join(referenceDir(dataset), "clusters.tsv.gz"));
  const leiden = new Map(cl.col("barcode").map((b, i) => [b, cl.col("leiden")[i]] as const));
  const groupNames = [...new Set(leiden.values())].sort((a, b) => Number(a) - Number(b));
  const code = new Map(groupNames.map((g, i) => [g, i] as const));
  const labels = Int32Array.from(keptBarcodes, (b) => code.get(leiden.get(b)!)!);
  return { X, featureIndex, geneNames: Array.from(featureIndex, (j) => m.var.index[j]), labels, groupNames };
}

function compareToReference(dataset: string, p: Prepared, tc: MarkerResult, noTc: MarkerResult) {
  const ref = readTsv(join(referenceDir(dataset), "markers.tsv.gz"));
  const group = ref.col("group");
  const fidx = ref.num("feature_index");
  const rank = ref.num("rank");
  const sc = ref.num("scores");
  const scOther = ref.num("scores_other_tie_mode");
  const lfc = ref.num("logfoldchanges");
  const pv = ref.num("pvals");
  const pAdj = ref.num("pvals_adj");
  const geneOf = new Map(Array.from(p.featureIndex, (f, j) => [f, j] as const));
  const gi = new Map(p.groupNames.map((g, i) => [g, i] as const));
  const groupSize = p.groupNames.map((_, g) => p.labels.filter((l) => l === g).length);
  const N = p.labels.length;
  const r = {
    maxScore: 0, maxOther: 0, maxLfc: 0, maxRankSum: 0, compared: 0,
    /** our p vs the reference's p, and the rows beyond 1e-3 relative */
    maxP: 0, nPOver: 0, nPTested: 0,
    /** |ln(p/p_ref)| beyond what the score difference explains (d ln p / dz = -z in the tail) */
    maxPUnexplained: 0,
    /** our p evaluated at the reference's own (float32) score vs the reference's p */
    maxPAtRefScore: 0,
    maxPadjUnexplained: 0,
    /** reference top-25 feature indices and their reference scores, per group */
    refTop: p.groupNames.map(() => [] as number[]),
    refScore: new Map<string, number>(),
  };
  const groupLnErr = new Float64Array(p.groupNames.length);
  const rowsAdj: [number, number, number][] = [];
  for (let i = 0; i < group.length; i++) {
    const g = gi.get(group[i])!;
    const j = geneOf.get(fidx[i])!;
    expect(j, `feature ${fidx[i]}`).toBeDefined();
    r.compared++;
    const dz = Math.abs(tc.scores[g][j] - sc[i]);
    r.maxScore = Math.max(r.maxScore, dz);
    r.maxOther = Math.max(r.maxOther, Math.abs(noTc.scores[g][j] - scOther[i]));
    r.maxLfc = Math.max(r.maxLfc, Math.abs(tc.logfoldchanges[g][j] - lfc[i]));
    // Rank sums recovered from the untied z: R = z·sqrt(n1 n2 (N+1)/12) + n1 (N+1)/2.
    const n1 = groupSize[g];
    const sd = Math.sqrt((n1 * (N - n1) * (N + 1)) / 12);
    r.maxRankSum = Math.max(r.maxRankSum, Math.abs((noTc.scores[g][j] - scOther[i]) * sd));
    if (pv[i] > 1e-300) {
      r.nPTested++;
      const rel = Math.abs(tc.pvals[g][j] - pv[i]) / pv[i];
      r.maxP = Math.max(r.maxP, rel);
      if (rel > 1e-3) r.nPOver++;
      const explained = 1.05 * Math.abs(sc[i]) * dz;
      r.maxPUnexplained = Math.max(r.maxPUnexplained, Math.abs(Math.log(tc.pvals[g][j] / pv[i])) - explained);
      r.maxPAtRefScore = Math.max(r.maxPAtRefScore, Math.abs(normalTwoSidedP(sc[i]) - pv[i]) / pv[i]);
    }
    if (pv[i] > 1e-300) groupLnErr[g] = Math.max(groupLnErr[g], Math.abs(Math.log(tc.pvals[g][j] / pv[i])));
    if (pAdj[i] > 1e-300) rowsAdj.push([g, j, pAdj[i]]);
    if (rank[i] <= 25) r.refTop[g][rank[i] - 1] = fidx[i];
    r.refScore.set(`${g}:${fidx[i]}`, sc[i]);
  }
  // BH is a running minimum of p·n/rank over genes: its log error is bounded by the group's largest
  // log error of p.
  for (const [g, j, ref] of rowsAdj) {
    r.maxPadjUnexplained = Math.max(r.maxPadjUnexplained, Math.abs(Math.log(tc.pvalsAdj[g][j] / ref)) - groupLnErr[g]);
  }
  return r;
}

for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
  describe.skipIf(!haveShared() || !existsSync(datasetDir(dataset)))(`rank_genes_groups wilcoxon vs scanpy_like: ${dataset}`, () => {
    it("scores (both tie modes), logfoldchanges, p-values and top 25 genes match", () => {
      const p = prepare(dataset);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const tc = rankGenesGroupsCpu(p.X, p.labels, p.groupNames, { method: "wilcoxon", tieCorrect: true });
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      const noTc = rankGenesGroupsCpu(p.X, p.labels, p.groupNames, { method: "wilcoxon", tieCorrect: false });
      const r = compareToReference(dataset, p, tc, noTc);
      console.log(`${dataset}: ${p.X.nRows} cells x ${p.X.nCols} genes x ${p.groupNames.length} groups, wilcoxon ${ms.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms cpu; ` +
        `rows ${r.compared}; max |dscore| ${r.maxScore.toExponential(2)}, other tie mode ${r.maxOther.toExponential(2)}, ` +
        `|dR| ${r.maxRankSum.toFixed(2)}, |dlfc| ${r.maxLfc.toExponential(2)}; p: max rel ${r.maxP.toExponential(2)}, ` +
        `${r.nPOver}/${r.nPTested} rows > 1e-3, unexplained by dz ${r.maxPUnexplained.toExponential(2)}, at ref score ${r.maxPAtRefScore.toExponential(2)}; ` +
        `p_adj unexplained ${r.maxPadjUnexplained.toExponential(2)}`);
      expect(r.compared).toBe(p.X.nCols * p.groupNames.length);
      expect(r.maxScore).toBeLessThan(1e-3);
      expect(r.maxOther).toBeLessThan(1e-3);
      expect(r.maxLfc).toBeLessThan(1e-3);
      expect(r.maxPAtRefScore).toBeLessThan(1e-3);
      expect(r.maxPUnexplained).toBeLessThan(1e-3);
      expect(r.maxPadjUnexplained).toBeLessThan(1e-3);
      expect(r.nPOver / r.nPTested).toBeLessThan(0.01);
      // Top 25 identical, except that genes with exactly equal reference scores may trade places
      // (scanpy's argsort leaves ties unordered; ours puts the smaller gene index first), also
      // across rank 25.
      p.groupNames.forEach((_, g) => {
        const ours = Array.from(tc.order[g].subarray(0, 25), (j) => p.featureIndex[j]);
        ours.forEach((f, k) => {
          if (f !== r.refTop[g][k]) expect(r.refScore.get(`${g}:${f}`), `group ${p.groupNames[g]} rank ${k + 1}`).toBe(r.refScore.get(`${g}:${r.refTop[g][k]}`));
        });
      });
    });
  });
}
