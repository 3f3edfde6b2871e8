/**
 * rankGenesGroupsGpu vs rankGenesGroupsCpu on the real WebGPU adapter (lavapipe here): Wilcoxon
 * with and without tie correction and the Welch t-test, on fresh random inputs (empty cells, genes
 * never expressed, genes expressed in every cell, groups of 2 cells, excluded cells, heavy ties,
 * negative values), with poisoned device buffers, many gene chunks (forced small binding limit),
 * byte-identical reruns, and on pbmc3k with the reference's QC cells and Leiden labels.
 * Contract: scores and logfoldchanges within 1e-4, p-values within 1e-6 relative (or 1e-300
 * absolute), identical top-25 genes per group.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { rankGenesGroupsCpu, rankGenesGroupsGpu, type MarkerOptions, type MarkerResult } from "../../src/ops/markers.js";
import { normalizeTotalLog1pCpu } from "../../src/ops/normalize.js";
import { referenceLeidenLabels, referenceQcInput } from "../helpers/referenceInput.js";
import { bytesEqual, randomCsr, rng, testGpu } from "./util.js";

const SMALL_LIMIT = 16 * 1024;
const MODES: [string, MarkerOptions][] = [
  ["wilcoxon, tie-corrected", { method: "wilcoxon", tieCorrect: true }],
  ["wilcoxon", { method: "wilcoxon", tieCorrect: false }],
  ["t-test", { method: "t-test", tieCorrect: false }],
];

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: SMALL_LIMIT } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

interface Case {
  X: Csr;
  labels: Int32Array;
  names: string[];
}

/** Labels 0..nGroups−1 at random, a fraction excluded (−1), the first two cells of each group forced so every group has ≥ 2. */
function randomLabels(nCells: number, nGroups: number, seed: number, excluded = 0.05): Int32Array {
  const r = rng(seed);
  const l = Int32Array.from({ length: nCells }, () => (r() < excluded ? -1 : Math.floor(r() * nGroups)));
  for (let g = 0; g < nGroups; g++) l[2 * g] = l[2 * g + 1] = g;
  return l;
}

/** X with values transformed per stored entry (kept sparse: zeros stay stored zeros). */
function mapValues(X: Csr, f: (v: number, k: number) => number): Csr {
  return { ...X, data: Float32Array.from(X.data, f) };
}

/** Adds a gene expressed in every cell (column nCols − 1 replaced). */
function withDenseGene(X: Csr, seed: number): Csr {
  const r = rng(seed);
  const rows: { j: number; v: number }[][] = [];
  for (let i = 0; i < X.nRows; i++) {
    const row: { j: number; v: number }[] = [];
    for (let k = X.indptr[i]; k < X.indptr[i + 1]; k++) if (X.indices[k] !== X.nCols - 1) row.push({ j: X.indices[k], v: X.data[k] });
    row.push({ j: X.nCols - 1, v: 1 + Math.floor(r() * 4) });
    rows.push(row);
  }
  const indptr = new Float64Array(X.nRows + 1);
  rows.forEach((row, i) => (indptr[i + 1] = indptr[i] + row.length));
  return { ...X, indptr, indices: Uint32Array.from(rows.flat(), (e) => e.j), data: Float32Array.from(rows.flat(), (e) => e.v) };
}

function names(n: number): string[] {
  return Array.from({ length: n }, (_, g) => `g${g}`);
}

const cases: [string, () => Case][] = [
  ["400 x 300 log-normalized, 5 groups, empty cells, dead genes", () => {
    const X = normalizeTotalLog1pCpu(randomCsr(400, 300, 21, { emptyRows: 0.1, deadCols: 0.2 }), 1e4);
    return { X, labels: randomLabels(400, 5, 22), names: names(5) };
  }],
  ["heavy ties: small integer counts, a gene in every cell, 12 groups", () => {
    const X = withDenseGene(mapValues(randomCsr(350, 120, 23, { density: 0.3 }), (v) => Math.min(v, 3)), 24);
    return { X, labels: randomLabels(350, 12, 25, 0.1), names: names(12) };
  }],
  ["groups of 2 cells, negatives with ties, stored zeros", () => {
    const base = randomCsr(60, 80, 26, { density: 0.4, emptyRows: 0.1 });
    const r = rng(27);
    const X = mapValues(base, (v) => (r() < 0.05 ? 0 : r() < 0.3 ? -Math.round(v) / 4 : Math.round(v * 2) / 4));
    const labels = Int32Array.from({ length: 60 }, (_, i) => (i < 2 ? 0 : i < 4 ? 1 : i < 8 ? -1 : 2));
    return { X, labels, names: names(3) };
  }],
  ["1500 x 700 log-normalized, 9 groups", () => {
    const X = normalizeTotalLog1pCpu(randomCsr(1500, 700, 28, { density: 0.12 }), 1e4);
    return { X, labels: randomLabels(1500, 9, 29, 0.02), names: names(9) };
  }],
];

/** max |a − b| over finite pairs; NaN / ±Inf must agree exactly (else Infinity). */
function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) {
      if (!Object.is(a[i], b[i])) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst;
}

/** Largest relative p-value error, p below 1e-300 compared absolutely. */
function maxRelP(a: Float64Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(b[i], 1e-300);
    if (Number.isNaN(e)) return Infinity;
    worst = Math.max(worst, e);
  }
  return worst;
}

function compare(gpuR: MarkerResult, cpuR: MarkerResult): { score: number; lfc: number; p: number; pAdj: number } {
  expect(gpuR.groupNames).toEqual(cpuR.groupNames);
  const d = { score: 0, lfc: 0, p: 0, pAdj: 0 };
  cpuR.groupNames.forEach((name, g) => {
    d.score = Math.max(d.score, maxAbsDiff(gpuR.scores[g], cpuR.scores[g]));
    d.lfc = Math.max(d.lfc, maxAbsDiff(gpuR.logfoldchanges[g], cpuR.logfoldchanges[g]));
    d.p = Math.max(d.p, maxRelP(gpuR.pvals[g], cpuR.pvals[g]));
    d.pAdj = Math.max(d.pAdj, maxRelP(gpuR.pvalsAdj[g], cpuR.pvalsAdj[g]));
    const k = Math.min(25, cpuR.order[g].length);
    expect(Array.from(gpuR.order[g].subarray(0, k)), `top 25 of group ${name}`).toEqual(Array.from(cpuR.order[g].subarray(0, k)));
  });
  expect(d.score).toBeLessThanOrEqual(1e-4);
  expect(d.lfc).toBeLessThanOrEqual(1e-4);
  expect(d.p).toBeLessThanOrEqual(1e-6);
  expect(d.pAdj).toBeLessThanOrEqual(1e-6);
  return d;
}

describe("rankGenesGroupsGpu vs rankGenesGroupsCpu", () => {
  it.each(cases)("%s", async (title, make) => {
    const { X, labels, names: groups } = make();
    for (const [mode, opts] of MODES) {
      const cpuR = rankGenesGroupsCpu(X, labels, groups, opts);
      const gpuR = await rankGenesGroupsGpu(gpu, X, labels, groups, opts);
      const d = compare(gpuR, cpuR);
      console.log(`${title} / ${mode}: max |dscore| ${d.score.toExponential(2)}, |dlfc| ${d.lfc.toExponential(2)}, rel dp ${d.p.toExponential(2)}, rel dpadj ${d.pAdj.toExponential(2)}`);
    }
  });

  it("is byte-identical run to run and across many gene chunks (small binding limit)", async () => {
    const X = normalizeTotalLog1pCpu(randomCsr(600, 400, 31, { density: 0.15 }), 1e4);
    const labels = randomLabels(600, 6, 32);
    const groups = names(6);
    for (const [, opts] of MODES) {
      const a = await rankGenesGroupsGpu(gpu, X, labels, groups, opts);
      const b = await rankGenesGroupsGpu(gpu, X, labels, groups, opts);
      const c = await rankGenesGroupsGpu(small, X, labels, groups, opts);
      for (let g = 0; g < groups.length; g++) {
        for (const k of ["scores", "logfoldchanges", "pvals", "pvalsAdj", "order"] as const) {
          expect(bytesEqual(a[k][g], b[k][g]), `${k} rerun`).toBe(true);
          expect(bytesEqual(a[k][g], c[k][g]), `${k} chunked`).toBe(true);
        }
      }
      compare(c, rankGenesGroupsCpu(X, labels, groups, opts));
    }
    // The forced limit really splits the genes: 16 KiB holds 4096 keys, X has far more nonzeros.
    expect(X.indptr[X.nRows]).toBeGreaterThan(4 * (SMALL_LIMIT / 4));
  });

  it("refuses groups of fewer than 2 cells, as the CPU twin", async () => {
    const X = randomCsr(20, 10, 33);
    const labels = Int32Array.from({ length: 20 }, (_, i) => (i === 0 ? 1 : 0));
    await expect(rankGenesGroupsGpu(gpu, X, labels, names(2), MODES[0][1])).rejects.toThrow(/fewer than 2 cells/);
  });
});

/** The reference's QC cells, log-normalized, on genes kept by filter_genes(min_cells=3), with the reference Leiden labels (as test/markers.test.ts). */
function preparePbmc3k(): Case {
  const d = referenceQcInput("pbmc3k");
  const { labels, groupNames } = referenceLeidenLabels("pbmc3k", d.barcodes);
  return { X: d.logNorm, labels, names: groupNames };
}

describe("rankGenesGroupsGpu on pbmc3k (reference QC cells and Leiden labels)", () => {
  it("matches the CPU twin in every mode; timings", async () => {
    const { X, labels, names: groups } = preparePbmc3k();
    for (const [mode, opts] of MODES) {
      let t = performance.now();
      const cpuR = rankGenesGroupsCpu(X, labels, groups, opts);
      const cpuMs = performance.now() - t;
      t = performance.now();
      const gpuR = await rankGenesGroupsGpu(gpu, X, labels, groups, opts);
      const gpuMs = performance.now() - t;
      const d = compare(gpuR, cpuR);
      console.log(`pbmc3k ${X.nRows} x ${X.nCols}, ${groups.length} groups, ${mode}: CPU ${cpuMs.toFixed(0)} ms, GPU (${gpu.info.description || gpu.info.vendor}) ${gpuMs.toFixed(0)} ms; ` +
        `max |dscore| ${d.score.toExponential(2)}, |dlfc| ${d.lfc.toExponential(2)}, rel dp ${d.p.toExponential(2)}, rel dpadj ${d.pAdj.toExponential(2)}`);
    }
  });
});
