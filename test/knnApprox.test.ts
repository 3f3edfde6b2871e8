import { describe, expect, it } from "vitest";
import { Rng } from "../src/core/random.js";
import { knnRecall } from "../src/metrics/index.js";
import { type Knn, knnApproxCpu, knnExactCpu } from "../src/ops/knn.js";
import { readMatrix, referenceDir } from "./helpers/reference.js";

/**
 * n points in d dims shaped like PCA scores: `clusters` Gaussian centres of varied size, every
 * coordinate's spread (centres and noise alike) decaying with its index, plus 3% of points on the
 * segment between two centres. Seeded.
 */
function pcaLike(n: number, d: number, clusters: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const scale = Array.from({ length: d }, (_, t) => 1 / Math.sqrt(1 + t / 3));
  const centres = Array.from({ length: clusters }, () => scale.map((s) => 5 * s * rng.normal()));
  const width = Array.from({ length: clusters }, () => 0.5 + rng.nextFloat());
  const cum: number[] = [];
  let total = 0;
  for (let c = 0; c < clusters; c++) cum.push((total += Math.exp(rng.normal())));
  const pick = (): number => {
    const u = rng.nextFloat() * total;
    let c = 0;
    while (cum[c] < u) c++;
    return c;
  };
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = pick();
    if (rng.nextFloat() < 0.03) {
      const c2 = pick();
      const l = rng.nextFloat();
      for (let t = 0; t < d; t++) x[i * d + t] = (1 - l) * centres[c][t] + l * centres[c2][t] + 0.7 * scale[t] * rng.normal();
    } else {
      for (let t = 0; t < d; t++) x[i * d + t] = centres[c][t] + width[c] * scale[t] * rng.normal();
    }
  }
  return x;
}

/**
 * Recall of the k − 1 non-self neighbours against brute force (float64 Σ(x−y)², every other point)
 * for `rows` query rows drawn at random.
 */
function sampledRecall(knn: Knn, x: Float32Array, d: number, rows: number, seed: number): number {
  const { n, k } = knn;
  const m = k - 1;
  const rng = new Rng(seed);
  const bestD = new Float64Array(m);
  const bestI = new Int32Array(m);
  let hits = 0;
  for (let s = 0; s < rows; s++) {
    const i = rng.nextU32() % n;
    bestD.fill(Infinity);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let v = 0;
      for (let t = 0; t < d; t++) v += (x[i * d + t] - x[j * d + t]) ** 2;
      if (v >= bestD[m - 1]) continue; // ascending j: an equal distance keeps the smaller index
      let p = m - 1;
      for (; p > 0 && bestD[p - 1] > v; p--) {
        bestD[p] = bestD[p - 1];
        bestI[p] = bestI[p - 1];
      }
      bestD[p] = v;
      bestI[p] = j;
    }
    const truth = new Set(bestI);
    for (let r = 1; r < k; r++) if (truth.has(knn.indices[i * k + r])) hits++;
  }
  return hits / (rows * m);
}

/**
 * Self first at 0, distinct others, rows non-decreasing by (distance, index), distances recomputed.
 * Checked in plain code (one expect per call: millions of expect calls would dominate the run).
 */
function expectWellFormed(knn: Knn, x: Float32Array, d: number): void {
  const { n, k, indices, distances } = knn;
  expect(indices.length).toBe(n * k);
  expect(distances.length).toBe(n * k);
  const bad: string[] = [];
  const sq = new Float64Array(k);
  for (let i = 0; i < n && bad.length < 5; i++) {
    if (indices[i * k] !== i || distances[i * k] !== 0) bad.push(`row ${i}: self not first at 0`);
    const seen = new Set<number>([i]);
    for (let r = 1; r < k; r++) {
      const j = indices[i * k + r];
      if (!(j >= 0 && j < n) || seen.has(j)) {
        bad.push(`row ${i}: bad or repeated neighbour ${j}`);
        break;
      }
      seen.add(j);
      let s = 0;
      for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
      sq[r] = s;
      if (Math.abs(distances[i * k + r] - Math.sqrt(s)) > 1e-6 * Math.sqrt(s) + 1e-12) bad.push(`row ${i}: distance ${r} wrong`);
      // float32 distances never decrease; an exact float64 tie goes to the smaller index.
      if (r > 1 && distances[i * k + r - 1] > distances[i * k + r]) bad.push(`row ${i}: not sorted at ${r}`);
      if (r > 1 && sq[r - 1] === s && indices[i * k + r - 1] > j) bad.push(`row ${i}: tie not by index at ${r}`);
    }
  }
  expect(bad).toEqual([]);
}

const sameBytes = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe("knnApproxCpu (RP forest + NN-descent)", () => {
  it("recall ≥ 0.95 on 20,000 × 50 PCA-like points in 40 clusters, against brute force for 300 rows", () => {
    const n = 20000;
    const d = 50;
    const x = pcaLike(n, d, 40, 7);
    const t = performance.now();
    // Two threads: the worker path is what runs at scale (the default is one thread below 50,000).
    const a = knnApproxCpu(x, n, d, 15, { seed: 1, threads: 2 });
    const ms = performance.now() - t;
    const recall = sampledRecall(a, x, d, 300, 5);
    console.log(`pcaLike 20000×50 k=15: recall of the 14 others ${recall.toFixed(4)}, ${ms.toFixed(0)} ms`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expectWellFormed(a, x, d);
  }, 180_000);

  it("same points + seed → identical bytes for 1, 2, 3 threads; another seed → other work, same quality", () => {
    const n = 4000;
    const d = 30;
    const x = pcaLike(n, d, 12, 3);
    const a = knnApproxCpu(x, n, d, 15, { seed: 3 });
    // Worker threads share the work by point ranges (3 threads: uneven ranges): the same bytes.
    for (const threads of [2, 3]) {
      const t = knnApproxCpu(x, n, d, 15, { seed: 3, threads });
      expect(sameBytes(t.indices, a.indices)).toBe(true);
      expect(sameBytes(t.distances, a.distances)).toBe(true);
    }
    // One round from a different forest: the seed really drives the computation.
    const c1 = knnApproxCpu(x, n, d, 15, { seed: 4, maxIterations: 0 });
    const a1 = knnApproxCpu(x, n, d, 15, { seed: 3, maxIterations: 0 });
    expect(sameBytes(c1.indices, a1.indices)).toBe(false);
    const exact = knnExactCpu(x, n, d, 15);
    expect(knnRecall(a.indices, exact.indices, n, 15)).toBeGreaterThanOrEqual(0.97);
    expect(knnRecall(knnApproxCpu(x, n, d, 15, { seed: 4 }).indices, exact.indices, n, 15)).toBeGreaterThanOrEqual(0.97);
  }, 60_000);

  it("recall ≥ 0.95 vs exact on pbmc3k's 50 reference PCs, k = 15", () => {
    const pca = readMatrix(`${referenceDir("pbmc3k")}/pca.tsv.gz`, "PC_");
    expect(pca.k).toBe(50);
    const x = Float32Array.from(pca.data);
    const exact = knnExactCpu(x, pca.n, pca.k, 15);
    const a = knnApproxCpu(x, pca.n, pca.k, 15, { seed: 0 });
    const recall = knnRecall(a.indices, exact.indices, pca.n, 15);
    console.log(`pbmc3k ${pca.n}×50 k=15: recall ${recall.toFixed(4)}`);
    expect(recall).toBeGreaterThanOrEqual(0.95);
    expectWellFormed(a, x, pca.k);
  });

  it("small shapes are exact: n = 1, k = 1, k = n, k = n − 1, d = 1", () => {
    const one = knnApproxCpu(new Float32Array([1.5, -2]), 1, 2, 1, { seed: 9 });
    expect(Array.from(one.indices)).toEqual([0]);
    expect(Array.from(one.distances)).toEqual([0]);

    const x = pcaLike(40, 3, 2, 5);
    const k1 = knnApproxCpu(x, 40, 3, 1);
    expect(Array.from(k1.indices)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(k1.distances.every((v) => v === 0)).toBe(true);

    for (const k of [40, 39, 16]) {
      const a = knnApproxCpu(x, 40, 3, k, { seed: 2 });
      expect(Array.from(a.indices)).toEqual(Array.from(knnExactCpu(x, 40, 3, k).indices));
      expectWellFormed(a, x, 3);
    }

    // d = 1 with distinct values: the neighbours of a point on a line are unambiguous.
    const line = Float32Array.from({ length: 300 }, (_, i) => ((i * 7919) % 300) * 0.5);
    const l = knnApproxCpu(line, 300, 1, 10, { seed: 1 });
    expect(knnRecall(l.indices, knnExactCpu(line, 300, 1, 10).indices, 300, 10)).toBe(1);
    expectWellFormed(l, line, 1);
  });

  it("exact duplicates: a point's copies are its nearest, at distance 0, ties by index", () => {
    // 200 distinct points, each repeated 4 times at scattered rows.
    const d = 5;
    const base = pcaLike(200, d, 4, 8);
    const n = 800;
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) x.set(base.subarray(((i * 37) % 200) * d, ((i * 37) % 200) * d + d), i * d);
    const a = knnApproxCpu(x, n, d, 6, { seed: 5 });
    expectWellFormed(a, x, d);
    for (let i = 0; i < n; i++) {
      const copies = [];
      for (let j = 0; j < n; j++) if (j !== i && (j * 37) % 200 === (i * 37) % 200) copies.push(j);
      expect(Array.from(a.indices.subarray(i * 6 + 1, i * 6 + 4))).toEqual(copies);
      expect(Array.from(a.distances.subarray(i * 6, i * 6 + 4))).toEqual([0, 0, 0, 0]);
    }
    expect(knnRecall(a.indices, knnExactCpu(x, n, d, 6).indices, n, 6)).toBeGreaterThanOrEqual(0.97);
  });

  it("rejects bad shapes and non-finite values", () => {
    const x = pcaLike(40, 3, 2, 5);
    expect(() => knnApproxCpu(x, 40, 3, 41)).toThrow(RangeError);
    expect(() => knnApproxCpu(x, 40, 3, 0)).toThrow(RangeError);
    expect(() => knnApproxCpu(x.subarray(1), 40, 3, 5)).toThrow(RangeError);
    const bad = x.slice();
    bad[7] = Number.NaN;
    expect(() => knnApproxCpu(bad, 40, 3, 5)).toThrow(/row 2/);
  });
});
