/**
 * knnIvfCpu (IVF-flat approximate kNN): recall against brute-force float64 neighbours on a
 * clustered 20k × 50 input (Gaussian mixture, per-coordinate scales decaying like PCs), the exact
 * answer when every list is probed, well-formed output (self first, sorted by (distance, index),
 * distances equal to the recomputed euclidean distances to float32 rounding), determinism, small
 * and degenerate shapes, bad input. Speed is printed, never asserted.
 */
import { describe, expect, it } from "vitest";
import { Rng } from "../src/core/random.js";
import { type Knn, knnExactCpu } from "../src/ops/knn.js";
import { knnIvfCpu } from "../src/ops/knnIvf.js";

function mixture(n: number, d: number, nc: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const centers = Float64Array.from({ length: nc * d }, (_, i) => 2 * r.normal() * Math.exp(-(i % d) / 12));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = r.nextU32() % nc;
    for (let t = 0; t < d; t++) x[i * d + t] = centers[c * d + t] + r.normal() * Math.exp(-t / 12);
  }
  return x;
}

function uniform(n: number, d: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * d }, () => r.nextFloat());
}

function dist(x: Float32Array, d: number, i: number, j: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
  return Math.sqrt(s);
}

/** Fraction of the true k nearest (float64 brute force, self included) found, over `queries` rows. */
function sampledRecall(x: Float32Array, n: number, d: number, knn: Knn, queries: number[]): number {
  let hits = 0;
  for (const q of queries) {
    // The k smallest by insertion (ties by index), not a sort of all n.
    const bd = new Float64Array(knn.k).fill(Infinity);
    const bi = new Int32Array(knn.k).fill(-1);
    for (let j = 0; j < n; j++) {
      const s = dist(x, d, q, j);
      if (s >= bd[knn.k - 1]) continue;
      let p = knn.k - 1;
      for (; p > 0 && bd[p - 1] > s; p--) {
        bd[p] = bd[p - 1];
        bi[p] = bi[p - 1];
      }
      bd[p] = s;
      bi[p] = j;
    }
    const truth = new Set(bi);
    for (let r = 0; r < knn.k; r++) if (truth.has(knn.indices[q * knn.k + r])) hits++;
  }
  return hits / (queries.length * knn.k);
}

/** Self first at 0, no repeats, ascending distances, distances = recomputed to f32 rounding. */
function wellFormedProblems(x: Float32Array, d: number, knn: Knn): string[] {
  const bad: string[] = [];
  const { n, k, indices: I, distances: D } = knn;
  for (let i = 0; i < n && bad.length < 5; i++) {
    const o = i * k;
    if (I[o] !== i || D[o] !== 0) bad.push(`row ${i}: self not first`);
    if (new Set(I.subarray(o, o + k)).size !== k) bad.push(`row ${i}: repeated neighbour`);
    for (let r = 1; r < k; r++) {
      const j = I[o + r];
      if (!(j >= 0 && j < n)) bad.push(`row ${i}: index ${j} out of range`);
      if (Math.abs(D[o + r] - dist(x, d, i, j)) > 1e-6 * Math.max(1, dist(x, d, i, j))) bad.push(`row ${i}: distance ${D[o + r]} vs ${dist(x, d, i, j)}`);
      // Ordered by squared distance: two squares can share one rounded sqrt, so only D is checked.
      if (D[o + r] < D[o + r - 1]) bad.push(`row ${i}: out of order at ${r}`);
    }
  }
  return bad;
}

describe("knnIvfCpu", () => {
  it("recall >= 0.95 on a clustered 20k × 50 input at the default nProbe", () => {
    const n = 20000;
    const d = 50;
    const x = mixture(n, d, 30, 1);
    const t0 = performance.now();
    const knn = knnIvfCpu(x, n, d, 15);
    console.log(`knnIvfCpu 20k × 50, k = 15: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const r = new Rng(7);
    const queries = Array.from({ length: 300 }, () => r.nextU32() % n);
    const recall = sampledRecall(x, n, d, knn, queries);
    console.log(`recall@15 (300 sampled queries): ${recall.toFixed(4)}`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expect(wellFormedProblems(x, d, knn)).toEqual([]);
  }, 60_000);

  it("probing every list gives knnExactCpu's neighbours (continuous data, no ties)", () => {
    const x = uniform(1500, 10, 3);
    const ivf = knnIvfCpu(x, 1500, 10, 15, { nLists: 30, nProbe: 30 });
    const exact = knnExactCpu(x, 1500, 10, 15);
    expect(Array.from(ivf.indices)).toEqual(Array.from(exact.indices));
    let worst = 0;
    for (let t = 0; t < exact.distances.length; t++) worst = Math.max(worst, Math.abs(ivf.distances[t] - exact.distances[t]) / Math.max(exact.distances[t], 1e-30));
    expect(worst).toBeLessThan(1e-6); // f32 sums vs knnExactCpu's float64 sums
  });

  it("few probes on uniform data: approximate, but well-formed and mostly right", () => {
    const x = uniform(3000, 8, 4);
    const ivf = knnIvfCpu(x, 3000, 8, 10, { nProbe: 2 });
    expect(wellFormedProblems(x, 8, ivf)).toEqual([]);
    const exact = knnExactCpu(x, 3000, 8, 10);
    let hits = 0;
    for (let i = 0; i < 3000; i++) {
      const t = new Set(exact.indices.subarray(i * 10, i * 10 + 10));
      for (let r = 0; r < 10; r++) if (t.has(ivf.indices[i * 10 + r])) hits++;
    }
    expect(hits / 30000).toBeGreaterThan(0.5);
    expect(hits / 30000).toBeLessThan(1); // 2 of 55 lists cannot hold every true neighbour
  });

  it("deterministic: same input and seed give the same bytes; the seed matters", () => {
    const x = mixture(2000, 12, 6, 2);
    const a = knnIvfCpu(x, 2000, 12, 15, { nProbe: 2, seed: 5 });
    const b = knnIvfCpu(x, 2000, 12, 15, { nProbe: 2, seed: 5 });
    expect(Buffer.from(a.indices.buffer).equals(Buffer.from(b.indices.buffer))).toBe(true);
    expect(Buffer.from(a.distances.buffer).equals(Buffer.from(b.distances.buffer))).toBe(true);
    const c = knnIvfCpu(x, 2000, 12, 15, { nProbe: 2, seed: 6 });
    expect(Buffer.from(a.indices.buffer).equals(Buffer.from(c.indices.buffer))).toBe(false);
  });

  it("small shapes: n = 1, k = n, d = 1, duplicates (ties by index) match knnExactCpu when exhaustive", () => {
    expect(knnIvfCpu(new Float32Array([3]), 1, 1, 1)).toEqual({ n: 1, k: 1, indices: new Int32Array([0]), distances: new Float32Array([0]) });
    const cases: [Float32Array, number, number, number][] = [
      [uniform(7, 3, 1), 7, 3, 7], // k = n
      [uniform(200, 1, 2), 200, 1, 9], // d = 1
      [Float32Array.from({ length: 120 * 2 }, (_, t) => Math.floor(t / 2) % 10), 120, 2, 16], // 12 copies of 10 points
    ];
    for (const [x, n, d, k] of cases) {
      const ivf = knnIvfCpu(x, n, d, k, { nProbe: 1e6 });
      const exact = knnExactCpu(x, n, d, k);
      expect(Array.from(ivf.indices)).toEqual(Array.from(exact.indices));
      for (let t = 0; t < n * k; t++) expect(Math.abs(ivf.distances[t] - exact.distances[t])).toBeLessThanOrEqual(1e-6 * exact.distances[t]);
    }
  });

  it("one list probed and lists smaller than k: every row still gets k − 1 neighbours", () => {
    const x = mixture(300, 5, 4, 9);
    const ivf = knnIvfCpu(x, 300, 5, 40, { nLists: 60, nProbe: 1 });
    expect(wellFormedProblems(x, 5, ivf)).toEqual([]);
  });

  it("rejects bad input", () => {
    expect(() => knnIvfCpu(new Float32Array([0, NaN]), 2, 1, 1)).toThrow(RangeError);
    expect(() => knnIvfCpu(new Float32Array(4), 2, 2, 3)).toThrow(RangeError);
    expect(() => knnIvfCpu(new Float32Array(4), 2, 2, 1, { nProbe: 0 })).toThrow(RangeError);
  });
});
