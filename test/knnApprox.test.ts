import { describe, expect, it } from "vitest";
import { Rng } from "../src/core/random.js";
import { knnRecall } from "../src/metrics/index.js";
import { type Knn, knnApproxCpu, knnExactCpu } from "../src/ops/knn.js";
import { readMatrix, referenceDir } from "./helpers/reference.js";

/** n points in d dims around `clusters` Gaussian centres (spread 4) with unit noise; seeded. */
function clustered(n: number, d: number, clusters: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: d }, () => 4 * rng.normal()));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = centres[i % clusters];
    for (let t = 0; t < d; t++) x[i * d + t] = c[t] + rng.normal();
  }
  return x;
}

/** Self first at 0, distinct others, rows non-decreasing by (distance, index), distances recomputed. */
function expectWellFormed(knn: Knn, x: Float32Array, d: number): void {
  const { n, k, indices, distances } = knn;
  expect(indices.length).toBe(n * k);
  expect(distances.length).toBe(n * k);
  const sq = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    expect(indices[i * k]).toBe(i);
    expect(distances[i * k]).toBe(0);
    const seen = new Set<number>([i]);
    for (let r = 1; r < k; r++) {
      const j = indices[i * k + r];
      expect(j >= 0 && j < n && !seen.has(j)).toBe(true);
      seen.add(j);
      let s = 0;
      for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
      sq[r] = s;
      expect(Math.abs(distances[i * k + r] - Math.sqrt(s))).toBeLessThanOrEqual(1e-6 * Math.sqrt(s) + 1e-12);
      if (r > 1) {
        // float32 distances never decrease; an exact float64 tie goes to the smaller index.
        expect(distances[i * k + r - 1]).toBeLessThanOrEqual(distances[i * k + r]);
        if (sq[r - 1] === s) expect(indices[i * k + r - 1]).toBeLessThan(j);
      }
    }
  }
}

describe("knnApproxCpu (NN-descent)", () => {
  it("recall ≥ 0.95 vs exact on 5,000 × 20 with 10 Gaussian clusters; same seed → same bytes", () => {
    const n = 5000;
    const d = 20;
    const k = 15;
    const x = clustered(n, d, 10, 11);
    let t = performance.now();
    const exact = knnExactCpu(x, n, d, k);
    const tExact = performance.now() - t;
    t = performance.now();
    const a = knnApproxCpu(x, n, d, k, { seed: 3 });
    const tApprox = performance.now() - t;
    const recall = knnRecall(a.indices, exact.indices, n, k);
    console.log(`clustered 5000×20 k=15: recall ${recall.toFixed(4)}, exact ${tExact.toFixed(0)} ms, approx ${tApprox.toFixed(0)} ms`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expectWellFormed(a, x, d);
    const b = knnApproxCpu(x, n, d, k, { seed: 3 });
    expect(Buffer.from(b.indices.buffer).equals(Buffer.from(a.indices.buffer))).toBe(true);
    expect(Buffer.from(b.distances.buffer).equals(Buffer.from(a.distances.buffer))).toBe(true);
    // A different seed starts elsewhere, so the lists are not simply the same computation again.
    const c = knnApproxCpu(x, n, d, k, { seed: 4, maxIterations: 1 });
    const a1 = knnApproxCpu(x, n, d, k, { seed: 3, maxIterations: 1 });
    expect(Buffer.from(c.indices.buffer).equals(Buffer.from(a1.indices.buffer))).toBe(false);
  });

  it("recall ≥ 0.95 vs exact on pbmc3k's 50 reference PCs, k = 15", () => {
    const pca = readMatrix(`${referenceDir("pbmc3k")}/pca.tsv.gz`, "PC_");
    expect(pca.k).toBe(50);
    const x = Float32Array.from(pca.data);
    let t = performance.now();
    const exact = knnExactCpu(x, pca.n, pca.k, 15);
    const tExact = performance.now() - t;
    t = performance.now();
    const a = knnApproxCpu(x, pca.n, pca.k, 15, { seed: 0 });
    const tApprox = performance.now() - t;
    const recall = knnRecall(a.indices, exact.indices, pca.n, 15);
    console.log(`pbmc3k ${pca.n}×50 k=15: recall ${recall.toFixed(4)}, exact ${tExact.toFixed(0)} ms, approx ${tApprox.toFixed(0)} ms`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expectWellFormed(a, x, pca.k);
  });

  it("edge cases: n = 1, k = 1, and k = n (every point is everyone's neighbour, so exact)", () => {
    const one = knnApproxCpu(new Float32Array([1.5, -2]), 1, 2, 1, { seed: 9 });
    expect(Array.from(one.indices)).toEqual([0]);
    expect(Array.from(one.distances)).toEqual([0]);

    const x = clustered(40, 3, 2, 5);
    const k1 = knnApproxCpu(x, 40, 3, 1);
    expect(Array.from(k1.indices)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(k1.distances.every((v) => v === 0)).toBe(true);

    const all = knnApproxCpu(x, 40, 3, 40, { seed: 2 });
    const exact = knnExactCpu(x, 40, 3, 40);
    expect(Array.from(all.indices)).toEqual(Array.from(exact.indices));
    expectWellFormed(all, x, 3);

    expect(() => knnApproxCpu(x, 40, 3, 41)).toThrow(RangeError);
    expect(() => knnApproxCpu(x, 40, 3, 0)).toThrow(RangeError);
    expect(() => knnApproxCpu(x.subarray(1), 40, 3, 5)).toThrow(RangeError);
  });

  it("timing vs exact on 20,000 × 50 clustered (reported, not asserted beyond recall)", () => {
    const n = 20000;
    const d = 50;
    const k = 15;
    const x = clustered(n, d, 10, 7);
    let t = performance.now();
    const exact = knnExactCpu(x, n, d, k);
    const tExact = performance.now() - t;
    t = performance.now();
    const a = knnApproxCpu(x, n, d, k, { seed: 1 });
    const tApprox = performance.now() - t;
    const recall = knnRecall(a.indices, exact.indices, n, k);
    console.log(`clustered 20000×50 k=15: recall ${recall.toFixed(4)}, exact ${tExact.toFixed(0)} ms, approx ${tApprox.toFixed(0)} ms`);
    expect(recall).toBeGreaterThanOrEqual(0.9);
  }, 60_000);
});
