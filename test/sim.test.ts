import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subsetRows } from "../src/core/csr.js";
import { readTenxMtxDir, readTenxMtxDirAsync } from "../src/io/mtx.js";
import { mulberry32 } from "../src/core/random.js";
import { adjustedRandIndex } from "../src/metrics/index.js";
import { normalizeTotalLog1pCpu } from "../src/ops/normalize.js";
import { cellQcCpu, mitoMask } from "../src/ops/qc.js";
import { defaultSimParams, extendSimParams } from "../src/sim/params.js";
import { SimRng } from "../src/sim/rng.js";
import {
  CellScratch,
  clusterRates,
  gammaPools,
  sampleCell,
  simulateTenx,
  type SimulateSummary,
} from "../src/sim/simulate.js";
import { datasetDir } from "./helpers/reference.js";

const N = 1000;
const root = mkdtempSync(join(tmpdir(), "cellgpu-sim-"));
const dirA = join(root, "a");
const dirB = join(root, "b");
const dirC = join(root, "c");
let sumA: SimulateSummary;

beforeAll(async () => {
  sumA = await simulateTenx({ nCells: N, outDir: dirA, seed: 7 });
  await simulateTenx({ nCells: N, outDir: dirB, seed: 7 });
  await simulateTenx({ nCells: N, outDir: dirC, seed: 8 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const files = ["matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz", "truth.tsv"];
const median = (a: ArrayLike<number>) => Float64Array.from(a).sort()[Math.floor(a.length / 2)];

describe("simulator", () => {
  it("same seed gives identical files, another seed differs", () => {
    for (const f of files) expect(readFileSync(join(dirA, f)).equals(readFileSync(join(dirB, f))), f).toBe(true);
    expect(readFileSync(join(dirA, "matrix.mtx.gz")).equals(readFileSync(join(dirC, "matrix.mtx.gz")))).toBe(false);
    expect(readFileSync(join(dirA, "truth.tsv")).equals(readFileSync(join(dirC, "truth.tsv")))).toBe(false);
  });

  it("is read back by readTenxMtxDir with the declared shape and counts", () => {
    const cm = readTenxMtxDir(dirA);
    expect(cm.X.nRows).toBe(N);
    expect(cm.X.nCols).toBe(sumA.nGenes);
    expect(cm.X.indptr[N]).toBe(sumA.nnz);
    let total = 0;
    for (const v of cm.X.data) total += v;
    expect(total).toBe(sumA.totalCounts);
    const truth = readFileSync(join(dirA, "truth.tsv"), "utf8").trim().split("\n").slice(1);
    expect(truth.map((l) => l.split("\t")[0])).toEqual(cm.obs.index);
  });

  it("library sizes, zeros and mito share resemble pbmc3k", () => {
    const sim = readTenxMtxDir(dirA);
    const real = readTenxMtxDir(datasetDir("pbmc3k"));
    const qs = cellQcCpu(sim.X, mitoMask(sim.var.index));
    const qr = cellQcCpu(real.X, mitoMask(real.var.index));
    const libRatio = median(qs.totalCounts) / median(qr.totalCounts);
    expect(libRatio).toBeGreaterThan(0.8);
    expect(libRatio).toBeLessThan(1.25);
    // zero fraction over the simulated genes (pbmc3k restricted to the same genes)
    const simGenes = new Set(sim.var.index);
    const keepCols = Uint8Array.from(real.var.index, (g) => (simGenes.has(g) ? 1 : 0));
    let nnzReal = 0;
    for (let o = 0; o < real.X.indptr[real.X.nRows]; o++) if (keepCols[real.X.indices[o]]) nnzReal++;
    const zerosReal = 1 - nnzReal / (real.X.nRows * simGenes.size);
    const zerosSim = 1 - sim.X.indptr[N] / (N * sim.X.nCols);
    expect(Math.abs(zerosSim - zerosReal)).toBeLessThan(0.03);
    const mtRatio = median(qs.pctCountsMt) / median(qr.pctCountsMt);
    expect(mtRatio).toBeGreaterThan(0.6);
    expect(mtRatio).toBeLessThan(1.6);
    // some but few cells beyond the tutorial's 5 % mito cut-off, as in pbmc3k (2 %)
    const highMt = qs.pctCountsMt.filter((p) => p >= 5).length / N;
    expect(highMt).toBeLessThan(0.1);
  });

  it("clusters are recoverable: nearest-centroid on half the cells labels the other half", () => {
    const cm = readTenxMtxDir(dirA);
    const truth = Int32Array.from(
      readFileSync(join(dirA, "truth.tsv"), "utf8").trim().split("\n").slice(1),
      (l) => Number(l.split("\t")[1]),
    );
    const X = normalizeTotalLog1pCpu(cm.X, 1e4);
    const k = Math.max(...truth) + 1;
    const train = Uint8Array.from({ length: N }, (_, i) => (i % 2 === 0 ? 1 : 0));
    const Xt = subsetRows(X, train);
    const yt = truth.filter((_, i) => train[i]);
    const G = X.nCols;
    const cent = new Float64Array(k * G);
    const cnt = new Float64Array(k);
    for (let r = 0; r < Xt.nRows; r++) {
      cnt[yt[r]]++;
      for (let o = Xt.indptr[r]; o < Xt.indptr[r + 1]; o++) cent[yt[r] * G + Xt.indices[o]] += Xt.data[o];
    }
    for (let c = 0; c < k; c++) for (let g = 0; g < G; g++) cent[c * G + g] /= Math.max(1, cnt[c]);
    const norms = Float64Array.from({ length: k }, (_, c) => {
      let s = 0;
      for (let g = 0; g < G; g++) s += cent[c * G + g] ** 2;
      return s;
    });
    const pred: number[] = [];
    const actual: number[] = [];
    for (let r = 1; r < N; r += 2) {
      let best = -1;
      let bestD = Infinity;
      for (let c = 0; c < k; c++) {
        // ‖x − m‖² − ‖x‖² = ‖m‖² − 2 x·m
        let dot = 0;
        for (let o = X.indptr[r]; o < X.indptr[r + 1]; o++) dot += X.data[o] * cent[c * G + X.indices[o]];
        const d = norms[c] - 2 * dot;
        if (d < bestD) {
          bestD = d;
          best = c;
        }
      }
      pred.push(best);
      actual.push(truth[r]);
    }
    const acc = pred.filter((p, i) => p === actual[i]).length / pred.length;
    expect(acc).toBeGreaterThan(0.9);
    expect(adjustedRandIndex(pred, actual)).toBeGreaterThan(0.8);
    // every cluster is populated
    expect(new Set(truth).size).toBe(k);
  });
});

/** Per-column mean and (n − 1) variance of a cells × genes CSR, zeros included. */
function geneMoments(X: { nRows: number; nCols: number; indptr: Float64Array; indices: Uint32Array; data: Float32Array }) {
  const s1 = new Float64Array(X.nCols);
  const s2 = new Float64Array(X.nCols);
  for (let o = 0; o < X.indptr[X.nRows]; o++) {
    s1[X.indices[o]] += X.data[o];
    s2[X.indices[o]] += X.data[o] * X.data[o];
  }
  const n = X.nRows;
  const mean = s1.map((s) => s / n);
  const variance = s2.map((s, g) => (s - n * mean[g] * mean[g]) / (n - 1));
  return { mean, variance };
}

describe("simulator sampling is exact", () => {
  it("gene mixing pools have mean 1 and variance φ for every fitted dispersion", () => {
    const p = defaultSimParams();
    const pools = gammaPools(p.dispersion, new SimRng(3, 2));
    let worst = 0;
    let minG = Infinity;
    for (let g = 0; g < p.dispersion.length; g++) {
      let m = 0;
      let m2 = 0;
      for (let i = 0; i < 256; i++) {
        const G = 1 + pools.shrink[g] * (pools.values[pools.off[g] + i] - 1);
        minG = Math.min(minG, G);
        m += G / 256;
        m2 += (G * G) / 256;
      }
      const phi = p.dispersion[g];
      worst = Math.max(worst, Math.abs(m - 1), Math.abs(m2 - m * m - phi) / Math.max(phi, 1e-3));
    }
    expect(minG).toBeGreaterThanOrEqual(0);
    expect(worst).toBeLessThan(1e-5);
  });

  it("Poisson-process counts match independent Poisson draws (reference sampler) gene by gene", () => {
    // 40 genes with expected counts from 0.002 to ~60 (some above the direct-draw cut-off), one mito
    const nG = 40;
    const lib = 1000;
    const q = Float64Array.from({ length: nG }, (_, g) => 2e-6 * 1.3 ** g);
    const lam = q.map((x) => x * lib);
    const mito = new Uint8Array(nG);
    mito[25] = 1;
    const mitoScale = 1.7;
    lam[25] *= mitoScale;
    const pools = gammaPools(new Float64Array(nG), new SimRng(1, 2)); // φ = 0: pure Poisson
    const rates = clusterRates(q, pools);
    const scratch = new CellScratch(nG);
    const genes = new Int32Array(nG);
    const counts = new Int32Array(nG);
    const n = 20000;
    const rng = new SimRng(11, 3);
    const sim = new Float64Array(n * nG);
    let ascending = true;
    for (let c = 0; c < n; c++) {
      const k = sampleCell(rng, rng.u32(), lib, rates, pools, mito, mitoScale, scratch, genes, counts);
      for (let i = 0; i < k; i++) {
        if (i > 0 && genes[i] <= genes[i - 1]) ascending = false;
        sim[c * nG + genes[i]] = counts[i];
      }
    }
    expect(ascending).toBe(true);
    // slow reference: one independent Poisson per gene by Knuth's product of uniforms
    const u = mulberry32(5);
    const poisson = (l: number) => {
      const L = Math.exp(-l);
      let k = 0;
      let p = u();
      while (p > L) {
        k++;
        p *= u();
      }
      return k;
    };
    const ref = new Float64Array(n * nG);
    for (let c = 0; c < n; c++) for (let g = 0; g < nG; g++) ref[c * nG + g] = poisson(lam[g]);
    const moments = (a: Float64Array, g: number) => {
      let s = 0, s2 = 0, z = 0;
      for (let c = 0; c < n; c++) {
        const y = a[c * nG + g];
        s += y;
        s2 += y * y;
        if (y === 0) z++;
      }
      const m = s / n;
      return { m, v: (s2 - n * m * m) / (n - 1), p0: z / n };
    };
    for (let g = 0; g < nG; g++) {
      const l = lam[g];
      const a = moments(sim, g);
      const b = moments(ref, g);
      const seMean = Math.sqrt(l / n);
      // Var(s²) for Poisson: (μ4 − σ⁴)/n with μ4 = λ + 3λ²
      const seVar = Math.sqrt((l + 2 * l * l) / n);
      const p0 = Math.exp(-l);
      const seP0 = Math.sqrt((p0 * (1 - p0)) / n) + 1e-9;
      expect(Math.abs(a.m - l) / seMean, `mean gene ${g}`).toBeLessThan(4.5);
      expect(Math.abs(a.v - l) / seVar, `var gene ${g}`).toBeLessThan(4.5);
      expect(Math.abs(a.p0 - p0) / seP0, `P(0) gene ${g}`).toBeLessThan(4.5);
      // the simulator and the reference agree with each other too (two-sample)
      expect(Math.abs(a.m - b.m) / (Math.SQRT2 * seMean), `mean vs reference gene ${g}`).toBeLessThan(4.5);
      expect(Math.abs(a.v - b.v) / (Math.SQRT2 * seVar), `var vs reference gene ${g}`).toBeLessThan(4.5);
    }
    // genes are independent: neighbouring genes (which share the arrival process) are uncorrelated
    for (let g = 0; g + 1 < nG; g++) {
      let sxy = 0;
      for (let c = 0; c < n; c++) sxy += (sim[c * nG + g] - lam[g]) * (sim[c * nG + g + 1] - lam[g + 1]);
      const r = sxy / n / Math.sqrt(lam[g] * lam[g + 1]);
      expect(Math.abs(r), `corr genes ${g},${g + 1}`).toBeLessThan(4.5 / Math.sqrt(n));
    }
  });

  it("per-gene mean and variance over 3000 cells match NB(L·q, φ) at a fixed library size", async () => {
    const n = 3000;
    const L = 3000;
    const dir = join(root, "nb");
    await simulateTenx({ nCells: n, outDir: dir, seed: 21, nClusters: 1, nDeGenes: 0, mitoSd: 0, libSize: L });
    const cm = await readTenxMtxDirAsync(dir);
    const p = defaultSimParams();
    expect(cm.var.index).toEqual(p.geneNames);
    const { mean, variance } = geneMoments(cm.X);
    let sumP = 0;
    for (const lp of p.logProp) sumP += Math.exp(lp);
    const zMean: number[] = [];
    const zVar: number[] = [];
    for (let g = 0; g < p.logProp.length; g++) {
      const mu = (L * Math.exp(p.logProp[g])) / sumP;
      if (mu * n < 200) continue; // too few counts for a normal approximation
      const phi = p.dispersion[g];
      const v = mu + phi * mu * mu;
      // NB excess kurtosis 6/r + p²/(r(1−p)) with r = 1/φ, p = r/(r+μ); φ = 0: Poisson's 1/μ
      const r = 1 / phi;
      const pr = r / (r + mu);
      const exKurt = phi > 0 ? 6 / r + (pr * pr) / (r * (1 - pr)) : 1 / mu;
      zMean.push((mean[g] - mu) / Math.sqrt(v / n));
      zVar.push((variance[g] - v) / (v * Math.sqrt((exKurt + 2) / n)));
    }
    expect(zMean.length).toBeGreaterThan(1000);
    for (const z of [zMean, zVar]) {
      const avg = z.reduce((s, x) => s + x, 0) / z.length;
      // independent genes: the average z is ~N(0, 1/K); a biased mean or variance shifts it
      expect(Math.abs(avg)).toBeLessThan(5 / Math.sqrt(z.length));
      expect(z.filter((x) => Math.abs(x) > 4).length / z.length).toBeLessThan(0.005);
    }
  });
});

describe("nGenes", () => {
  it("adds SIMG genes copied from fitted genes, shares renormalised, deterministic per seed", () => {
    const p = defaultSimParams();
    const a = extendSimParams(p, 20000, 5);
    const b = extendSimParams(p, 20000, 5);
    const c = extendSimParams(p, 20000, 6);
    expect(a.logProp.length).toBe(20000);
    expect(a.geneNames.slice(0, p.geneNames.length)).toEqual(p.geneNames);
    expect(a.geneNames[p.geneNames.length]).toBe("SIMG00001");
    expect(a.geneIds[19999]).toBe(`SIMENSG${String(20000 - p.geneNames.length).padStart(5, "0")}`);
    expect(a.geneNames.filter((x) => /^MT-/i.test(x)).length).toBe(p.geneNames.filter((x) => /^MT-/i.test(x)).length);
    expect(Buffer.from(a.logProp.buffer).equals(Buffer.from(b.logProp.buffer))).toBe(true);
    expect(Buffer.from(a.logProp.buffer).equals(Buffer.from(c.logProp.buffer))).toBe(false);
    let s = 0;
    for (const lp of a.logProp) s += Math.exp(lp);
    expect(Math.abs(s - 1)).toBeLessThan(1e-9);
    // every extra gene's (share before renormalisation, dispersion) is a fitted gene's
    const shift = a.logProp[0] - p.logProp[0];
    const key = (lp: number, phi: number) => `${lp.toPrecision(6)}|${phi}`;
    const fitted = new Set(Array.from(p.logProp, (lp, g) => key(lp, p.dispersion[g])));
    for (let g = p.geneNames.length; g < 20000; g++) expect(fitted.has(key(a.logProp[g] - shift, a.dispersion[g]))).toBe(true);
    expect(() => extendSimParams(p, 100, 1)).toThrow(/nGenes/);
  });

  it("a 20,000-gene simulation writes 20,000 features and ~800 nonzeros per cell", async () => {
    const dir = join(root, "g20k");
    const s = await simulateTenx({ nCells: 300, outDir: dir, seed: 1, nGenes: 20000 });
    const cm = await readTenxMtxDirAsync(dir);
    expect(cm.X.nCols).toBe(20000);
    expect(s.nGenes).toBe(20000);
    expect(cm.X.indptr[300]).toBe(s.nnz);
    expect(cm.var.index[19999]).toMatch(/^SIMG/);
    const perCell = s.nnz / 300;
    expect(perCell).toBeGreaterThan(600);
    expect(perCell).toBeLessThan(1200);
    // the SIMG genes carry counts
    let extra = 0;
    for (let o = 0; o < cm.X.indptr[300]; o++) if (cm.X.indices[o] >= 13000 && /^SIMG/.test(cm.var.index[cm.X.indices[o]])) extra++;
    expect(extra / s.nnz).toBeGreaterThan(0.1);
    await expect(simulateTenx({ nCells: 10, outDir: join(root, "bad"), seed: 1, nGenes: 50 })).rejects.toThrow(/nGenes/);
  });
});
