/**
 * scaledGramGpu vs scaledGramCpu on the real adapter: fresh random log-normalized inputs with
 * empty rows, never-expressed features, clipped entries (rare features scale past ±maxValue) and a
 * high-mean, low-spread feature (the worst case for the −n·ddᵀ cancellation); row chunks and Gram
 * row blocks forced by a small binding limit; poisoned device buffers; byte-identical reruns.
 * Error measure: |ΔG_jk| / sqrt(max(G_jj, 1) · max(G_kk, 1)), relative to the entry's correlation
 * scale (a floor of one cell's unit variance for the degenerate one-row / constant-feature cases).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { scaledGramCpu, scaledGramGpu } from "../../src/ops/gram.js";
import { normalizeTotalLog1pCpu } from "../../src/ops/normalize.js";
import { scaleParamsCpu } from "../../src/ops/scale.js";
import { bytesEqual, maxRelErr, randomCsr, rng, testGpu } from "./util.js";

const REDUCTION = 1e-4;

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 16 * 1024 } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

/** Log-normalized random counts plus a near-constant high feature and a rare (clipped) one. */
function logMatrix(nRows: number, nCols: number, seed: number, emptyRows = 0): Csr {
  const base = randomCsr(nRows, nCols, seed, { density: 0.15, emptyRows, deadCols: 0.1 });
  const r = rng(seed + 100);
  const idx: number[] = [];
  const val: number[] = [];
  const indptr = new Float64Array(nRows + 1);
  for (let i = 0; i < nRows; i++) {
    const a = base.indptr[i];
    const b = base.indptr[i + 1];
    if (b > a) {
      idx.push(0); // feature 0: ~1000 counts in every non-empty cell, small spread
      val.push(1000 + Math.floor(r() * 40));
      for (let k = a; k < b; k++) {
        if (base.indices[k] === 0 || base.indices[k] === nCols - 1) continue;
        idx.push(base.indices[k]);
        val.push(base.data[k]);
      }
      if (i % 211 === 5) {
        idx.push(nCols - 1); // last feature: rare and large, so its scaled value is clipped
        val.push(50);
      }
    }
    indptr[i + 1] = idx.length;
  }
  const counts: Csr = { nRows, nCols, indptr, indices: Uint32Array.from(idx), data: Float32Array.from(val) };
  return normalizeTotalLog1pCpu(counts, 1e4);
}

function gramErr(g: Float64Array, ref: Float64Array, p: number): number {
  let worst = 0;
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < p; k++) {
      const scale = Math.sqrt(Math.max(ref[j * p + j], 1) * Math.max(ref[k * p + k], 1));
      const e = Math.abs(g[j * p + k] - ref[j * p + k]) / scale;
      if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
    }
  }
  return worst;
}

describe("scaledGramGpu", () => {
  const cases: [string, number, number, number | undefined, number][] = [
    ["one row", 1, 40, 10, 0],
    ["400 x 120, max_value 10", 400, 120, 10, 0],
    ["400 x 120, no clipping", 400, 120, undefined, 0],
    ["500 x 150, 20% empty rows", 500, 150, 10, 0.2],
    ["1500 x 300, max_value 10", 1500, 300, 10, 0],
  ];
  it.each(cases)("matches scaledGramCpu: %s", async (_, n, p, maxValue, emptyRows) => {
    const X = logMatrix(n, p, n + p, emptyRows);
    const { mean, std } = scaleParamsCpu(X);
    const cpu = scaledGramCpu(X, mean, std, maxValue);
    const g = await scaledGramGpu(gpu, X, mean, std, maxValue);
    expect(bytesEqual(g.c, cpu.c)).toBe(true);
    expect(bytesEqual(g.colMean, cpu.colMean)).toBe(true);
    const diag = (m: Float64Array) => Float64Array.from({ length: p }, (_, j) => m[j * p + j]);
    expect(maxRelErr(diag(g.gram), diag(cpu.gram), 1)).toBeLessThanOrEqual(REDUCTION);
    expect(gramErr(g.gram, cpu.gram, p)).toBeLessThanOrEqual(REDUCTION);
    for (let j = 0; j < p; j++) for (let k = 0; k < j; k++) expect(g.gram[j * p + k]).toBe(g.gram[k * p + j]);
  });

  it("clips: the rare feature's scaled values pass max_value", () => {
    const X = logMatrix(400, 120, 520);
    const { mean, std } = scaleParamsCpu(X);
    const j = 119;
    let maxZ = 0;
    for (let k = 0; k < X.indices.length; k++) if (X.indices[k] === j) maxZ = Math.max(maxZ, (X.data[k] - mean[j]) / std[j]);
    expect(maxZ).toBeGreaterThan(10);
    expect(mean[0] / std[0]).toBeGreaterThan(10); // feature 0: c_0 is clipped at −10 too
  });

  it("is byte-identical run to run; chunked (many chunks, Gram row blocks) is byte-identical to unchunked", async () => {
    const X = logMatrix(700, 200, 77);
    const { mean, std } = scaleParamsCpu(X);
    const a = await scaledGramGpu(gpu, X, mean, std, 10);
    const b = await scaledGramGpu(gpu, X, mean, std, 10);
    expect(bytesEqual(a.gram, b.gram)).toBe(true);
    const c = await scaledGramGpu(small, X, mean, std, 10);
    const c2 = await scaledGramGpu(small, X, mean, std, 10);
    expect(bytesEqual(c.gram, c2.gram)).toBe(true);
    // Fixed-point sums are exact, so chunking changes nothing.
    expect(bytesEqual(c.gram, a.gram)).toBe(true);
    expect(gramErr(c.gram, scaledGramCpu(X, mean, std, 10).gram, 200)).toBeLessThanOrEqual(REDUCTION);
  });
});
