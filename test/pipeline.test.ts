/**
 * The CPU engine end to end on real data, checked against the scanpy-like reference run
 * (../shared/reference/<dataset>/scanpy_like) with the fidelity bars of issue 2.
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { fuzzySimplicialSetCpu } from "../src/ops/connectivities.js";
import { leidenCpu } from "../src/ops/leiden.js";
import { analyze, type AnalyzeOutput } from "../src/pipeline/analyze.js";
import { presetDefaults } from "../src/pipeline/params.js";
import { adjustedRandIndex, jaccard, knnRecall, modularity, subspaceSimilarity, trustworthiness } from "../src/metrics/index.js";
import { datasetDir, readMatrix, readTsv, referenceDir } from "./helpers/reference.js";
import { featureIndexByName, referenceGraph, referencePcs } from "./helpers/pipelineRef.js";

interface Case {
  dataset: string;
  ariMin: number;
  /** ARI bar for the end-to-end partition, whose graph differs from the reference's (see below). */
  ariEndToEnd: number;
  /** Cells to subsample for trustworthiness (O(n²)). */
  trustSample: number;
}
const cases: Case[] = [
  { dataset: "pbmc3k", ariMin: 0.65, ariEndToEnd: 0.6, trustSample: 2638 },
  { dataset: "kang2018_ctrl_5donors", ariMin: 0.9, ariEndToEnd: 0.75, trustSample: 2500 },
];

function sampleRows(data: ArrayLike<number>, d: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * d);
  rows.forEach((r, i) => {
    for (let j = 0; j < d; j++) out[i * d + j] = data[r * d + j];
  });
  return out;
}

for (const c of cases) {
  describe(`scanpy preset on ${c.dataset} vs the scanpy-like reference`, () => {
    const ref = referenceDir(c.dataset);
    let out: AnalyzeOutput;
    let refQc: ReturnType<typeof readTsv>;
    let passIdx: number[];

    beforeAll(async () => {
      const input = readTenxMtxDir(datasetDir(c.dataset));
      out = await analyze(input, { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 });
      refQc = readTsv(join(ref, "qc.tsv.gz"));
      passIdx = refQc.col("pass_qc").flatMap((v, i) => (v === "True" ? [i] : []));
    });

    it("keeps the same cells with identical QC metrics", () => {
      const bc = refQc.col("barcode");
      expect(out.result.obs.index).toEqual(passIdx.map((i) => bc[i]));
      const col = (name: string) => {
        const v = out.result.obs.columns.get(name);
        if (!v || v.kind !== "number") throw new Error(name);
        return v.values;
      };
      const ng = refQc.num("n_genes_by_counts");
      const tc = refQc.num("total_counts");
      const mt = refQc.num("pct_counts_mt");
      passIdx.forEach((r, i) => {
        expect(col("n_genes_by_counts")[i]).toBe(ng[r]);
        expect(col("total_counts")[i]).toBe(tc[r]);
        expect(Math.abs(col("pct_counts_mt")[i] - mt[r])).toBeLessThan(1e-5 * Math.max(1, mt[r]));
      });
    });

    it("selects the same highly variable genes (Jaccard >= 0.99)", () => {
      const byName = featureIndexByName(c.dataset);
      const mine = out.result.var.index.filter((_, j) => out.hvgMask[j]).map((n) => byName.get(n)!);
      const theirs = readTsv(join(ref, "hvg.tsv")).num("feature_index");
      const jac = jaccard(mine, Array.from(theirs));
      console.log(`${c.dataset}: HVG Jaccard ${jac.toFixed(4)}`);
      expect(jac).toBeGreaterThanOrEqual(0.99);
    });

    it("finds the same PCA subspace and variance ratios", () => {
      const refPca = referencePcs(c.dataset);
      const n = out.nCells;
      const k = out.pcaScores.length / n;
      const sim = subspaceSimilarity(out.pcaScores, refPca.data, n, 10, k, refPca.k);
      const vr = readTsv(join(ref, "pca_variance.tsv")).num("variance_ratio");
      let worst = 0;
      for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(out.varianceRatio[j] - vr[j]) / vr[j]);
      console.log(`${c.dataset}: PC1-10 subspace similarity ${sim.toFixed(6)}, worst variance-ratio rel. error ${worst.toExponential(2)}`);
      expect(sim).toBeGreaterThanOrEqual(0.999);
      expect(worst).toBeLessThan(1e-3);
    });

    it("finds the same 15 nearest neighbours (recall >= 0.99)", () => {
      const refKnn = readMatrix(join(ref, "knn_indices.tsv.gz"), "nn_");
      const recall = knnRecall(out.knn.indices, refKnn.data, out.nCells, out.knn.k, refKnn.k);
      console.log(`${c.dataset}: kNN@15 recall ${recall.toFixed(5)}`);
      expect(recall).toBeGreaterThanOrEqual(0.99);
    });

    it(`Leiden on the reference's own kNN: quality >= 99.5 % of leidenalg's, ARI >= ${c.ariMin}`, () => {
      // The reference kNN came from sklearn's NearestNeighbors, whose float rounding leaves a
      // ~1e-7 positive self-distance on about 2/3 of the cells; umap takes that as rho and the
      // weights move by up to 0.7. Our exact kNN puts self at 0 (as scanpy's own slow path does),
      // so the bars are checked on the graph our connectivities build from the
      // reference's kNN, and the end-to-end partition is held to looser bars below.
      const g = referenceGraph(c.dataset);
      const refLabels = readTsv(join(ref, "clusters.tsv.gz")).num("leiden");
      const ri = readMatrix(join(ref, "knn_indices.tsv.gz"), "nn_");
      const rd = readMatrix(join(ref, "knn_distances.tsv.gz"), "d_");
      const ourGraph = fuzzySimplicialSetCpu({ n: ri.n, k: ri.k, indices: Int32Array.from(ri.data), distances: Float32Array.from(rd.data) });
      const labels = leidenCpu(ourGraph, { resolution: 1, seed: 0 });
      const qRef = modularity(g, refLabels, 1);
      const q = modularity(g, labels, 1);
      const ari = adjustedRandIndex(labels, refLabels);
      console.log(`${c.dataset}: Leiden on the reference kNN: quality ${(q / qRef).toFixed(4)} of the reference's, ARI ${ari.toFixed(3)}`);
      expect(q).toBeGreaterThanOrEqual(0.995 * qRef);
      expect(ari).toBeGreaterThanOrEqual(c.ariMin);
    });

    it(`end-to-end clusters stay close to the reference (quality >= 98.5 %, ARI >= ${c.ariEndToEnd})`, () => {
      const g = referenceGraph(c.dataset);
      const refLabels = readTsv(join(ref, "clusters.tsv.gz")).num("leiden");
      const qRef = modularity(g, refLabels, 1);
      const qMine = modularity(g, out.clusters, 1);
      const ari = adjustedRandIndex(out.clusters, refLabels);
      console.log(`${c.dataset}: end-to-end modularity ${qMine.toFixed(5)} vs reference ${qRef.toFixed(5)} (${(qMine / qRef).toFixed(4)}), ARI ${ari.toFixed(3)}, ${out.nClusters} clusters`);
      expect(qMine).toBeGreaterThanOrEqual(0.985 * qRef);
      expect(ari).toBeGreaterThanOrEqual(c.ariEndToEnd);
    });

    it("lays out UMAP as trustworthy as the reference (within 0.02)", () => {
      const refPca = referencePcs(c.dataset);
      const refUmap = readMatrix(join(ref, "umap.tsv.gz"), "UMAP_");
      const n = out.nCells;
      const step = n / c.trustSample;
      const rows = Array.from({ length: Math.min(n, c.trustSample) }, (_, i) => Math.floor(i * step));
      const X = sampleRows(refPca.data, refPca.k, rows);
      const tMine = trustworthiness(X, refPca.k, sampleRows(out.umap, 2, rows), 2, rows.length, 15);
      const tRef = trustworthiness(X, refPca.k, sampleRows(refUmap.data, 2, rows), 2, rows.length, 15);
      console.log(`${c.dataset}: UMAP trustworthiness ${tMine.toFixed(4)} vs reference ${tRef.toFixed(4)}`);
      expect(tMine).toBeGreaterThanOrEqual(tRef - 0.02);
    });
  });
}

describe("rank_genes_groups on the reference's own Leiden labels", () => {
  for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(`${dataset}: Wilcoxon scores within 1e-3 and identical top 25 per group`, async () => {
      const ref = referenceDir(dataset);
      const input = readTenxMtxDir(datasetDir(dataset));
      const bc = readTsv(join(ref, "clusters.tsv.gz"));
      const groups = new Map(bc.col("barcode").map((b, i) => [b, bc.col("leiden")[i]]));
      const out = await analyze(input, { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5, tieCorrect: true }, { groups });
      const m = readTsv(join(ref, "markers.tsv.gz"));
      const byName = featureIndexByName(dataset);
      const rgg = out.result.uns.rank_genes_groups as { [k: string]: unknown };
      const names = (rgg.names as { recarray: { fields: string[]; columns: string[][] } }).recarray;
      const scores = (rgg.scores as { recarray: { fields: string[]; columns: Float32Array[] } }).recarray;
      const group = m.col("group");
      const fi = m.num("feature_index");
      const sc = m.num("scores");
      const rank = m.num("rank");
      let worst = 0;
      let checked = 0;
      for (const [gi, g] of names.fields.entries()) {
        const mineScore = new Map(names.columns[gi].map((n, r) => [byName.get(n)!, scores.columns[gi][r]]));
        const refTop: number[] = [];
        for (let r = 0; r < group.length; r++) {
          if (group[r] !== g) continue;
          if (rank[r] <= 25) refTop[rank[r] - 1] = fi[r];
          const s = mineScore.get(fi[r]);
          if (s !== undefined) {
            worst = Math.max(worst, Math.abs(s - sc[r]));
            checked++;
          }
        }
        const mineTop = names.columns[gi].slice(0, 25).map((n) => byName.get(n)!);
        expect(mineTop).toEqual(refTop);
      }
      console.log(`${dataset}: ${checked} marker scores compared, worst |Δ| ${worst.toExponential(2)}`);
      expect(checked).toBeGreaterThan(1000);
      expect(worst).toBeLessThan(1e-3);
    });
  }
});

describe("seurat preset on pbmc3k", () => {
  it("recovers the Seurat tutorial's cell types (ARI >= 0.85)", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc3k"));
    const labels = readTsv(join(datasetDir("pbmc3k"), "labels_seurat_tutorial.tsv"));
    const truth = new Map(labels.col("barcode").map((b, i) => [b, labels.col("cell_type")[i]]));
    const seurat = await analyze(input, { ...presetDefaults("seurat"), maxGenes: 2500, maxPctMt: 5 });
    const scanpy = await analyze(input, { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 });
    const ari = (o: AnalyzeOutput) => {
      const a: number[] = [];
      const b: string[] = [];
      o.result.obs.index.forEach((bc, i) => {
        const t = truth.get(bc);
        if (t !== undefined) {
          a.push(o.clusters[i]);
          b.push(t);
        }
      });
      const codes = new Map([...new Set(b)].map((t, i) => [t, i]));
      return { ari: adjustedRandIndex(a, b.map((t) => codes.get(t)!)), n: a.length };
    };
    const s = ari(seurat);
    const d = ari(scanpy);
    console.log(`pbmc3k: ARI vs tutorial cell types — seurat preset ${s.ari.toFixed(3)} (${seurat.nClusters} clusters, ${s.n} cells), scanpy default ${d.ari.toFixed(3)}`);
    expect(s.n).toBeGreaterThan(2600);
    expect(s.ari).toBeGreaterThanOrEqual(0.85);
  });
});
