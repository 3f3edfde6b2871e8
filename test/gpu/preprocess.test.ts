/**
 * GPU twins of the preprocessing ops vs their CPU twins, on the real WebGPU adapter (lavapipe
 * here): per-cell QC, normalize_total + log1p, per-feature mean / variance. Fresh random CSR
 * inputs with empty rows, a single row, never-expressed genes and many row chunks (forced small
 * binding limit); device buffers are poisoned with NaN bytes so unwritten outputs show.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { csrChunks } from "../../src/gpu/chunking.js";
import { cellQcCpu, cellQcGpu } from "../../src/ops/qc.js";
import { featureMomentsCpu, featureMomentsGpu, normalizeTotalLog1pCpu, normalizeTotalLog1pGpu } from "../../src/ops/normalize.js";
import { bytesEqual, maxRelErr, randomCsr, rng, testGpu } from "./util.js";

const ELEMENTWISE = 1e-5;
const REDUCTION = 1e-4;
const SMALL_LIMIT = 16 * 1024;

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

const shapes: [string, () => Csr][] = [
  ["no rows", () => randomCsr(0, 40, 1)],
  ["one row", () => randomCsr(1, 300, 2, { emptyRows: 0, density: 0.3 })],
  ["all rows empty", () => randomCsr(7, 30, 3, { emptyRows: 1 })],
  ["300 x 500, empty rows, dead genes", () => randomCsr(300, 500, 4, { emptyRows: 0.2, deadCols: 0.2 })],
  ["1200 x 1500", () => randomCsr(1200, 1500, 5, { density: 0.08 })],
];

function mitoFor(nCols: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: nCols }, () => (r() < 0.05 ? 1 : 0));
}

describe("cellQcGpu", () => {
  it.each(shapes)("matches cellQcCpu: %s", async (_, make) => {
    const X = make();
    const mito = mitoFor(X.nCols, 11);
    const cpu = cellQcCpu(X, mito);
    const g = await cellQcGpu(gpu, X, mito);
    expect(Array.from(g.nGenesByCounts)).toEqual(Array.from(cpu.nGenesByCounts));
    expect(maxRelErr(g.totalCounts, cpu.totalCounts)).toBeLessThanOrEqual(REDUCTION);
    expect(maxRelErr(g.pctCountsMt, cpu.pctCountsMt)).toBeLessThanOrEqual(REDUCTION);
  });

  it("gives identical bytes run to run and chunked (many chunks) vs unchunked", async () => {
    const X = randomCsr(500, 400, 6, { density: 0.15 });
    const mito = mitoFor(X.nCols, 12);
    expect(csrChunks(small, X).length).toBeGreaterThan(5);
    const a = await cellQcGpu(gpu, X, mito);
    const b = await cellQcGpu(gpu, X, mito);
    const c = await cellQcGpu(small, X, mito);
    for (const k of ["nGenesByCounts", "totalCounts", "pctCountsMt"] as const) {
      expect(bytesEqual(a[k], b[k])).toBe(true);
      expect(bytesEqual(a[k], c[k])).toBe(true);
    }
  });
});

describe("normalizeTotalLog1pGpu", () => {
  it.each(shapes)("matches normalizeTotalLog1pCpu within 1e-5: %s", async (_, make) => {
    const X = make();
    for (const target of [1e4, 1e6]) {
      const cpu = normalizeTotalLog1pCpu(X, target);
      const g = await normalizeTotalLog1pGpu(gpu, X, target);
      expect(g.indptr).toBe(X.indptr);
      expect(g.indices).toBe(X.indices);
      expect(maxRelErr(g.data, cpu.data)).toBeLessThanOrEqual(ELEMENTWISE);
    }
  });

  it("is accurate where log(1 + x) would not be: tiny normalized values", async () => {
    // One deep cell (total 1e7) with single counts: x = 1e-3 before log1p.
    const X: Csr = { nRows: 1, nCols: 3, indptr: Float64Array.of(0, 3), indices: Uint32Array.of(0, 1, 2), data: Float32Array.of(1, 2, 1e7 - 3) };
    const cpu = normalizeTotalLog1pCpu(X, 1e4);
    const g = await normalizeTotalLog1pGpu(gpu, X, 1e4);
    expect(maxRelErr(g.data, cpu.data)).toBeLessThanOrEqual(ELEMENTWISE);
  });

  it("gives identical bytes run to run and chunked vs unchunked", async () => {
    const X = randomCsr(500, 400, 7, { density: 0.15 });
    expect(csrChunks(small, X).length).toBeGreaterThan(5);
    const a = await normalizeTotalLog1pGpu(gpu, X, 1e4);
    const b = await normalizeTotalLog1pGpu(gpu, X, 1e4);
    const c = await normalizeTotalLog1pGpu(small, X, 1e4);
    expect(bytesEqual(a.data, b.data)).toBe(true);
    expect(bytesEqual(a.data, c.data)).toBe(true);
  });
});

describe("featureMomentsGpu", () => {
  it.each(shapes)("matches featureMomentsCpu within 1e-4 (counts and log data): %s", async (_, make) => {
    const counts = make();
    for (const X of [counts, normalizeTotalLog1pCpu(counts, 1e4)]) {
      const cpu = featureMomentsCpu(X);
      const g = await featureMomentsGpu(gpu, X);
      if (X.nRows === 0) {
        // 0/0: both report NaN means and zero variances.
        expect(Array.from(g.mean).every(Number.isNaN)).toBe(true);
        expect(Array.from(g.variance)).toEqual(Array.from(cpu.variance));
        continue;
      }
      expect(maxRelErr(g.mean, cpu.mean)).toBeLessThanOrEqual(REDUCTION);
      expect(maxRelErr(g.variance, cpu.variance)).toBeLessThanOrEqual(REDUCTION);
    }
  });

  it("keeps the variance of a high-mean, low-spread feature (no Σx² − n·mean² cancellation)", async () => {
    const r = rng(21);
    const n = 3000;
    const data = Float32Array.from({ length: n }, () => 1000 + r());
    const X: Csr = { nRows: n, nCols: 1, indptr: Float64Array.from({ length: n + 1 }, (_, i) => i), indices: new Uint32Array(n), data };
    const cpu = featureMomentsCpu(X);
    const g = await featureMomentsGpu(gpu, X);
    expect(maxRelErr(g.mean, cpu.mean)).toBeLessThanOrEqual(REDUCTION);
    expect(maxRelErr(g.variance, cpu.variance)).toBeLessThanOrEqual(REDUCTION);
  });

  it("gives identical bytes run to run; chunked agrees with unchunked", async () => {
    const X = normalizeTotalLog1pCpu(randomCsr(600, 500, 8, { density: 0.15 }), 1e4);
    expect(csrChunks(small, X).length).toBeGreaterThan(5);
    const a = await featureMomentsGpu(gpu, X);
    const b = await featureMomentsGpu(gpu, X);
    expect(bytesEqual(a.mean, b.mean) && bytesEqual(a.variance, b.variance)).toBe(true);
    const c = await featureMomentsGpu(small, X);
    const c2 = await featureMomentsGpu(small, X);
    expect(bytesEqual(c.mean, c2.mean) && bytesEqual(c.variance, c2.variance)).toBe(true);
    // Chunks change the float32 block partition, so equal to rounding, not to the bit.
    expect(maxRelErr(c.mean, a.mean)).toBeLessThanOrEqual(1e-6);
    expect(maxRelErr(c.variance, a.variance)).toBeLessThanOrEqual(1e-5);
  });
});
