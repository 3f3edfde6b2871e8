import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subsetRows } from "../src/core/csr.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { adjustedRandIndex } from "../src/metrics/index.js";
import { normalizeTotalLog1pCpu } from "../src/ops/normalize.js";
import { cellQcCpu, mitoMask } from "../src/ops/qc.js";
import { simulateTenx, type SimulateSummary } from "../src/sim/simulate.js";
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
