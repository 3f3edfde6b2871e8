import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Csr, fromDense, subsetCols, subsetRows, toDense } from "../src/core/csr.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { jaccard } from "../src/metrics/index.js";
import { highlyVariableGenesCpu, loessInterpolate } from "../src/ops/hvg.js";
import { scaleParamsCpu } from "../src/ops/scale.js";
import { datasetDir, readTsv, referenceDir } from "./helpers/reference.js";
import { referenceQcInput } from "./helpers/referenceInput.js";


/** Largest |a − b| / (1e-4·|b| + floor): ≤ 1 means within 1e-4 relative, with an absolute floor near zero. */
function worstExcess(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-5): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1e-4 * Math.abs(b[i]) + floor));
  return worst;
}

describe("highly variable genes vs references", () => {
  for (const name of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(`seurat flavor and scale params match scanpy_like on ${name}`, () => {
      const d = referenceQcInput(name);
      const r = highlyVariableGenesCpu(d, { flavor: "seurat", nTopGenes: 2000 });
      const ref = readTsv(join(referenceDir(name), "hvg.tsv"));
      const mine = d.featureIndex.filter((_, j) => r.highlyVariable[j]);
      expect(jaccard(mine, ref.num("feature_index"))).toBeGreaterThanOrEqual(0.99);

      const all = readTsv(join(referenceDir(name), "hvg_all_genes.tsv.gz"));
      const col = new Map(d.featureIndex.map((f, j) => [f, j]));
      const js = Array.from(all.num("feature_index"), (f) => col.get(f)!);
      expect(js.every((j) => j !== undefined)).toBe(true);
      const refMeans = all.num("means");
      const refDisp = all.num("dispersions");
      const refNorm = all.num("dispersions_norm");
      // All-zero genes: scanpy's source gives NaN dispersion; the reference wrote 0. Skip them.
      const ok = js.map((j, i) => i).filter((i) => refMeans[i] > 1e-11);
      expect(js.length - ok.length).toBeLessThan(5);
      expect(worstExcess(ok.map((i) => r.means[js[i]]), ok.map((i) => refMeans[i]))).toBeLessThanOrEqual(1);
      expect(worstExcess(ok.map((i) => r.dispersions[js[i]]), ok.map((i) => refDisp[i]))).toBeLessThanOrEqual(1);
      // The reference's dispersions carry float32 noise (~3e-6 relative on highly expressed genes),
      // which division by a small bin std turns into up to ~1e-4 absolute in dispersions_norm.
      expect(worstExcess(ok.map((i) => r.dispersionsNorm[js[i]]), ok.map((i) => refNorm[i]), 2e-4)).toBeLessThanOrEqual(1);

      const X = subsetCols(d.logNorm, r.highlyVariable);
      const { mean, std } = scaleParamsCpu(X);
      const sp = readTsv(join(referenceDir(name), "scale_params.tsv.gz"));
      const hvCols = new Map(mine.map((f, j) => [f, j]));
      const spIdx = Array.from(sp.num("feature_index"), (f) => hvCols.get(f)!);
      expect(worstExcess(spIdx.map((j) => mean[j]), sp.num("mean"))).toBeLessThanOrEqual(1);
      expect(worstExcess(spIdx.map((j) => std[j]), sp.num("std"))).toBeLessThanOrEqual(1);
    }, 60_000);
  }

  it("seurat_v3 on counts matches Seurat's vst HVGs on pbmc3k", () => {
    const cm = readTenxMtxDir(datasetDir("pbmc3k"));
    const sdir = referenceDir("pbmc3k", "seurat");
    const qc = readTsv(join(sdir, "qc.tsv.gz"));
    const pos = new Map(cm.obs.index.map((b, i) => [b, i]));
    const keep = new Uint8Array(cm.X.nRows);
    const pass = qc.col("pass_qc");
    qc.col("barcode").forEach((b, i) => pass[i] === "TRUE" && (keep[pos.get(b)!] = 1));
    // Seurat's genes (min.cells), from its all-genes table.
    const all = readTsv(join(sdir, "hvg_all_genes.tsv.gz"));
    const genes = new Set(all.num("feature_index"));
    const geneKeep = Uint8Array.from({ length: cm.X.nCols }, (_, j) => (genes.has(j) ? 1 : 0));
    const geneIdx: number[] = [];
    geneKeep.forEach((g, j) => g && geneIdx.push(j));
    const counts = subsetCols(subsetRows(cm.X, keep), geneKeep);
    const r = highlyVariableGenesCpu({ logNorm: counts, counts }, { flavor: "seurat_v3", nTopGenes: 2000 });
    const mine = geneIdx.filter((_, j) => r.highlyVariable[j]);
    expect(mine.length).toBe(2000);
    const jac = jaccard(mine, readTsv(join(sdir, "hvg.tsv")).num("feature_index"));
    console.log(`seurat_v3 vs Seurat vst Jaccard on pbmc3k: ${jac}`);
    expect(jac).toBeGreaterThanOrEqual(0.95);
    // Standardized variances against Seurat's, for genes Seurat fitted.
    const col = new Map(geneIdx.map((f, j) => [f, j]));
    const std = all.num("variance.standardized");
    let worst = 0;
    all.num("feature_index").forEach((f, i) => {
      if (std[i] > 0.5) worst = Math.max(worst, Math.abs(r.variancesNorm![col.get(f)!] / std[i] - 1));
    });
    expect(worst).toBeLessThan(5e-3);
    // Ranks 0..1999 on the HVGs, NaN elsewhere.
    const ranks = Array.from(r.highlyVariableRank!).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    expect(ranks).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  }, 60_000);
});

describe("highly variable genes, self-contained", () => {
  it("loess reproduces a quadratic exactly (local quadratic fits + cubic Hermite)", () => {
    const n = 500;
    const x = Float64Array.from({ length: n }, (_, i) => Math.sin(i) * 3 + i / 100);
    const y = Float64Array.from(x, (v) => 0.5 - 1.5 * v + 0.25 * v * v);
    const fit = loessInterpolate(x, y, 0.3);
    for (let i = 0; i < n; i++) expect(Math.abs(fit[i] - y[i])).toBeLessThan(1e-9);
  });

  it("cell_ranger flavor matches a direct dense computation", () => {
    // Genes with varied means and dispersions; a dense, independent recomputation.
    const nCells = 60;
    const nGenes = 80;
    const dense = new Float64Array(nCells * nGenes);
    let s = 12345;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let g = 0; g < nGenes; g++) {
      const rate = 0.05 + (g / nGenes) * 0.9;
      for (let c = 0; c < nCells; c++) if (rand() < rate) dense[c * nGenes + g] = Math.fround(Math.log1p(1 + 10 * rand() * rand()));
    }
    const X: Csr = fromDense(dense, nCells, nGenes);
    const r = highlyVariableGenesCpu({ logNorm: X, counts: X }, { flavor: "cell_ranger", nTopGenes: 20 });
    const D = toDense(X);
    const mean = new Float64Array(nGenes);
    const disp = new Float64Array(nGenes);
    for (let g = 0; g < nGenes; g++) {
      let m = 0;
      for (let c = 0; c < nCells; c++) m += D[c * nGenes + g];
      m /= nCells;
      let v = 0;
      for (let c = 0; c < nCells; c++) v += (D[c * nGenes + g] - m) ** 2;
      mean[g] = m;
      disp[g] = v / (nCells - 1) / m;
    }
    const sorted = Array.from(mean).sort((a, b) => a - b);
    const pct = (q: number) => {
      const h = (q / 100) * (nGenes - 1);
      const lo = Math.floor(h);
      return sorted[lo] + (sorted[Math.min(lo + 1, nGenes - 1)] - sorted[lo]) * (h - lo);
    };
    const edges = [-Infinity, ...Array.from({ length: 19 }, (_, i) => pct(10 + 5 * i)), Infinity];
    const bin = Array.from(mean, (m) => edges.findIndex((e) => e >= m) - 1);
    const med = (a: number[]) => {
      const b = a.slice().sort((x, y) => x - y);
      return b.length % 2 ? b[(b.length - 1) / 2] : (b[b.length / 2 - 1] + b[b.length / 2]) / 2;
    };
    const expected = new Float64Array(nGenes);
    for (let g = 0; g < nGenes; g++) {
      const members = Array.from(disp).filter((_, h) => bin[h] === bin[g]);
      const m = med(members);
      expected[g] = (disp[g] - m) / (med(members.map((x) => Math.abs(x - m))) / 0.6744897501960817);
    }
    for (let g = 0; g < nGenes; g++) {
      expect(r.means[g]).toBeCloseTo(mean[g], 10);
      expect(r.meanBin![g]).toBe(bin[g]);
      if (Number.isFinite(expected[g])) expect(Math.abs(r.dispersionsNorm[g] - expected[g])).toBeLessThan(1e-8 * (1 + Math.abs(expected[g])));
    }
    const finite = Array.from(expected).filter((x) => !Number.isNaN(x)).sort((a, b) => b - a);
    const cut = finite[19];
    for (let g = 0; g < nGenes; g++) expect(r.highlyVariable[g]).toBe(expected[g] >= cut ? 1 : 0);
  });
});
