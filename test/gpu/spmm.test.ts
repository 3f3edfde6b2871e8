/**
 * scaledSpmmGpu (kernels/spmm.wgsl) vs scaledSpmmCpu on the real adapter: fresh random
 * log-normalized CSR inputs with empty rows, never-expressed genes, one row, clipping on and off
 * (a rare, large gene scales past max_value), k = 1, 7, 50; several row chunks forced by a small
 * binding limit; poisoned device buffers (an unwritten output reads NaN); byte-identical reruns.
 * Error measure: per row, max_i |Δout[r, i]| / max(‖out_ref[r, ·]‖₂, 1e-6).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { zeroScaled } from "../../src/ops/gram.js";
import { normalizeTotalLog1pCpu } from "../../src/ops/normalize.js";
import { scaledSpmmCpu, scaledSpmmGpu } from "../../src/ops/pca.js";
import { scaleParamsCpu } from "../../src/ops/scale.js";
import { bytesEqual, randomCsr, rng, testGpu } from "./util.js";

const TOL = 1e-4;

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 8 * 1024 } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

/** Log-normalized random counts; the last gene is rare and large (clipped at max_value 10). */
function logMatrix(nRows: number, nCols: number, seed: number, emptyRows: number): Csr {
  const base = randomCsr(nRows, nCols, seed, { density: 0.15, emptyRows, deadCols: 0.1 });
  const idx: number[] = [];
  const val: number[] = [];
  const indptr = new Float64Array(nRows + 1);
  for (let i = 0; i < nRows; i++) {
    for (let t = base.indptr[i]; t < base.indptr[i + 1]; t++) {
      if (base.indices[t] === nCols - 1) continue;
      idx.push(base.indices[t]);
      val.push(base.data[t]);
    }
    if (i % 97 === 3 && base.indptr[i + 1] > base.indptr[i]) {
      idx.push(nCols - 1);
      val.push(500);
    }
    indptr[i + 1] = idx.length;
  }
  return normalizeTotalLog1pCpu({ nRows, nCols, indptr, indices: Uint32Array.from(idx), data: Float32Array.from(val) }, 1e4);
}

/** Inputs as pcaGpu builds them: scale parameters, c, unit-ish random loadings V (p×k) and dV. */
function inputs(X: Csr, k: number, maxValue: number | undefined, seed: number) {
  const { mean, std } = scaleParamsCpu(X);
  const c = zeroScaled(mean, std, maxValue);
  const r = rng(seed);
  const Vt = Float32Array.from({ length: X.nCols * k }, () => (r() - 0.5) / Math.sqrt(X.nCols));
  const dV = Float64Array.from({ length: k }, () => r() - 0.5);
  return { mean, std, c, Vt, dV };
}

function rowErr(a: Float32Array, ref: Float32Array, n: number, k: number): number {
  let worst = 0;
  for (let r = 0; r < n; r++) {
    let norm = 0;
    for (let i = 0; i < k; i++) norm += ref[r * k + i] ** 2;
    const scale = Math.max(Math.sqrt(norm), 1e-6);
    for (let i = 0; i < k; i++) {
      const e = Math.abs(a[r * k + i] - ref[r * k + i]) / scale;
      if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
    }
  }
  return worst;
}

describe("scaledSpmmGpu", () => {
  const cases: [string, number, number, number, number | undefined, number][] = [
    ["one row, k 1", 1, 40, 1, 10, 0],
    ["400 x 120, k 7, max_value 10", 400, 120, 7, 10, 0.05],
    ["400 x 120, k 7, no clipping", 400, 120, 7, undefined, 0.05],
    ["600 x 200, k 50, 20% empty rows", 600, 200, 50, 10, 0.2],
    ["900 x 150, k 1, no clipping", 900, 150, 1, undefined, 0.1],
  ];
  it.each(cases)("matches scaledSpmmCpu: %s", async (_, n, p, k, maxValue, emptyRows) => {
    const X = logMatrix(n, p, n * 7 + p + k, emptyRows);
    const { mean, std, c, Vt, dV } = inputs(X, k, maxValue, n + k);
    const ref = scaledSpmmCpu(X, mean, std, c, maxValue, Vt, k, dV);
    const out = await scaledSpmmGpu(gpu, X, mean, std, c, maxValue, Vt, k, dV);
    expect(out.length).toBe(n * k);
    expect(rowErr(out, ref, n, k)).toBeLessThanOrEqual(TOL);
  });

  it("covers the edge cases: clipped entries, never-expressed genes and empty rows (output dV)", async () => {
    const n = 400;
    const p = 120;
    const k = 7;
    const X = logMatrix(n, p, 9, 0.1);
    const { mean, std, c, Vt, dV } = inputs(X, k, 10, 3);
    let maxZ = 0;
    const seen = new Uint8Array(p);
    for (let t = 0; t < X.indices.length; t++) {
      const j = X.indices[t];
      seen[j] = 1;
      maxZ = Math.max(maxZ, (X.data[t] - mean[j]) / std[j]);
    }
    expect(maxZ).toBeGreaterThan(10);
    expect(seen.includes(0)).toBe(true);
    const out = await scaledSpmmGpu(gpu, X, mean, std, c, 10, Vt, k, dV);
    const empty = Array.from({ length: n }, (_, r) => r).filter((r) => X.indptr[r + 1] === X.indptr[r]);
    expect(empty.length).toBeGreaterThan(0);
    for (const r of empty) for (let i = 0; i < k; i++) expect(out[r * k + i]).toBe(Math.fround(dV[i]));
    // Clipping matters: without it the rows holding the rare gene differ.
    const unclipped = scaledSpmmCpu(X, mean, std, zeroScaled(mean, std, undefined), undefined, Vt, k, dV);
    expect(rowErr(out, unclipped, n, k)).toBeGreaterThan(1e-2);
  });

  it("is byte-identical run to run, and chunked (several chunks) is byte-identical to unchunked", async () => {
    const n = 700;
    const p = 150;
    const k = 7;
    const X = logMatrix(n, p, 77, 0.05);
    const { mean, std, c, Vt, dV } = inputs(X, k, 10, 5);
    const a = await scaledSpmmGpu(gpu, X, mean, std, c, 10, Vt, k, dV);
    const b = await scaledSpmmGpu(gpu, X, mean, std, c, 10, Vt, k, dV);
    expect(bytesEqual(a, b)).toBe(true);
    // 8 KiB bindings: ≤ 2048 nonzeros and ≤ 292 rows of 7 outputs per chunk.
    expect(X.indptr[n]).toBeGreaterThan(3 * 2048);
    const ch = await scaledSpmmGpu(small, X, mean, std, c, 10, Vt, k, dV);
    expect(bytesEqual(ch, a)).toBe(true);
    expect(rowErr(ch, scaledSpmmCpu(X, mean, std, c, 10, Vt, k, dV), n, k)).toBeLessThanOrEqual(TOL);
  });
});
