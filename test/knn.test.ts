import { mulberry32 as rng } from "../src/core/random.js";
import { describe, expect, it } from "vitest";
import { knnRecall } from "../src/metrics/index.js";
import { type Knn, knnExactCpu } from "../src/ops/knn.js";
import { readMatrix, referenceDir } from "./helpers/reference.js";

/** Naive O(n² d) float64 kNN: all distances of a row, self first, then sorted by (distance, index). */
function naiveKnn(x: Float32Array, n: number, d: number, k: number): { indices: Int32Array; dist: Float64Array } {
  const indices = new Int32Array(n * k);
  const dist = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const all: [number, number][] = [];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
      all.push([s, j]);
    }
    all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    indices[i * k] = i;
    for (let r = 0; r < k - 1; r++) {
      indices[i * k + 1 + r] = all[r][1];
      dist[i * k + 1 + r] = Math.sqrt(all[r][0]);
    }
  }
  return { indices, dist };
}

function expectSameAsNaive(x: Float32Array, n: number, d: number, k: number): void {
  const got = knnExactCpu(x, n, d, k);
  const want = naiveKnn(x, n, d, k);
  expect(got.n).toBe(n);
  expect(got.k).toBe(k);
  expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
  for (let t = 0; t < n * k; t++) {
    expect(Math.abs(got.distances[t] - want.dist[t])).toBeLessThanOrEqual(1e-6 * want.dist[t] + 1e-12);
  }
}

describe("knnExactCpu on random inputs vs a naive float64 implementation", () => {
  const shapes: [number, number, number][] = [
    [1, 3, 1],
    [7, 1, 7],
    [50, 3, 10],
    [200, 17, 15],
    [300, 50, 30],
    [260, 5, 20], // more than two column tiles
  ];
  for (const [n, d, k] of shapes) {
    it(`continuous values, n=${n} d=${d} k=${k}`, () => {
      const r = rng(n * 1000 + d * 10 + k);
      const x = Float32Array.from({ length: n * d }, () => r() * 4 - 2);
      expectSameAsNaive(x, n, d, k);
    });
  }

  it("integer grid points: many exactly tied distances, ties go to the smaller index", () => {
    const r = rng(7);
    const n = 240;
    const d = 3;
    const x = Float32Array.from({ length: n * d }, () => Math.floor(r() * 4));
    expectSameAsNaive(x, n, d, 25);
  });

  it("duplicate points: self first, then duplicates at distance exactly 0 by index", () => {
    const r = rng(11);
    const n = 150;
    const d = 8;
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      // every third point copies an earlier one
      if (i % 3 === 2) x.copyWithin(i * d, Math.floor(r() * i) * d, Math.floor(r() * i) * d + d);
      else for (let t = 0; t < d; t++) x[i * d + t] = r();
    }
    // make a triple of identical points so a point has two zero-distance neighbours
    x.copyWithin(100 * d, 10 * d, 11 * d);
    x.copyWithin(120 * d, 10 * d, 11 * d);
    const same = (i: number, j: number) => x.subarray(i * d, i * d + d).every((v, t) => v === x[j * d + t]);
    const copies = Array.from({ length: n }, (_, j) => j).filter((j) => j !== 100 && same(100, j));
    expect(copies.length).toBeGreaterThanOrEqual(2);
    const got = knnExactCpu(x, n, d, copies.length + 2);
    const row = Array.from(got.indices.subarray(100 * got.k, 101 * got.k));
    expect(row.slice(0, copies.length + 1)).toEqual([100, ...copies]);
    expect(Array.from(got.distances.subarray(100 * got.k, 100 * got.k + copies.length + 1)).every((v) => v === 0)).toBe(true);
    expect(got.distances[101 * got.k - 1]).toBeGreaterThan(0);
    expectSameAsNaive(x, n, d, 12);
  });

  it("identical output on a second run", () => {
    const r = rng(3);
    const x = Float32Array.from({ length: 500 * 10 }, () => r());
    const a = knnExactCpu(x, 500, 10, 15);
    const b = knnExactCpu(x, 500, 10, 15);
    expect(Buffer.from(a.indices.buffer).equals(Buffer.from(b.indices.buffer))).toBe(true);
    expect(Buffer.from(a.distances.buffer).equals(Buffer.from(b.distances.buffer))).toBe(true);
  });

  it("rejects bad shapes", () => {
    expect(() => knnExactCpu(new Float32Array(6), 3, 2, 4)).toThrow(/k <= n/);
    expect(() => knnExactCpu(new Float32Array(5), 3, 2, 2)).toThrow(/expected n\*d/);
    expect(() => knnExactCpu(new Float32Array(6), 3, 2, 0)).toThrow(/k <= n/);
  });
});

/** n points in d dims with coordinates in {0 .. levels−1} (many tied distances), every third one a copy of an earlier point. */
function tiedPoints(n: number, d: number, levels: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = Float32Array.from({ length: n * d }, () => Math.floor(r() * levels));
  for (let i = 2; i < n; i += 3) {
    const src = Math.floor(r() * i);
    x.copyWithin(i * d, src * d, src * d + d);
  }
  return x;
}

function sameBytes(a: Knn, b: Knn): boolean {
  return (
    Buffer.from(a.indices.buffer, a.indices.byteOffset, a.indices.byteLength).equals(Buffer.from(b.indices.buffer, b.indices.byteOffset, b.indices.byteLength)) &&
    Buffer.from(a.distances.buffer, a.distances.byteOffset, a.distances.byteLength).equals(Buffer.from(b.distances.buffer, b.distances.byteOffset, b.distances.byteLength))
  );
}

describe("knnExactCpu on 1, 2, 3 threads: byte-identical, and equal to the naive kNN", () => {
  // n below one 128-row tile, exactly one tile, odd n over several tiles, k = n.
  const shapes: [number, number, number, number][] = [
    [5, 3, 4, 2],
    [127, 6, 10, 3],
    [128, 4, 12, 2],
    [301, 7, 20, 3],
    [520, 50, 15, 2],
    [9, 2, 9, 2],
  ];
  for (const [n, d, k, levels] of shapes) {
    it(`tied coordinates and duplicates, n=${n} d=${d} k=${k}`, () => {
      const x = tiedPoints(n, d, levels, n * 7 + d);
      const want = naiveKnn(x, n, d, k);
      const one = knnExactCpu(x, n, d, k, { threads: 1 });
      expect(Array.from(one.indices)).toEqual(Array.from(want.indices));
      expect(Array.from(one.distances)).toEqual(Array.from(want.dist, (v) => Math.fround(v)));
      for (const threads of [2, 3]) expect(sameBytes(knnExactCpu(x, n, d, k, { threads }), one)).toBe(true);
    });
  }

  it("all points identical: every list is the other indices in order, at distance 0", () => {
    const n = 261;
    const x = new Float32Array(n * 4).fill(0.25);
    const got = knnExactCpu(x, n, 4, 8, { threads: 3 });
    for (let i = 0; i < n; i++) {
      const others = Array.from({ length: n }, (_, j) => j).filter((j) => j !== i);
      expect(Array.from(got.indices.subarray(i * 8, i * 8 + 8))).toEqual([i, ...others.slice(0, 7)]);
    }
    expect(got.distances.every((v) => v === 0)).toBe(true);
    expect(sameBytes(got, knnExactCpu(x, n, 4, 8, { threads: 1 }))).toBe(true);
  });

  it("k = 1 (no neighbours besides self) with threads", () => {
    const got = knnExactCpu(new Float32Array([1, 2, 3, 4, 5, 6]), 3, 2, 1, { threads: 2 });
    expect(Array.from(got.indices)).toEqual([0, 1, 2]);
    expect(Array.from(got.distances)).toEqual([0, 0, 0]);
  });

  it("long enough for the workers to share the scan: 3,001 × 50 with ties and duplicates, threads 1, 2, 3", () => {
    const n = 3001;
    const d = 50;
    const x = tiedPoints(n, d, 2, 5);
    const one = knnExactCpu(x, n, d, 15, { threads: 1 });
    // Spot-check rows against the naive definition (the full naive kNN is too slow here).
    for (const i of [0, 1, 2, 1500, 2999, 3000]) {
      const all: [number, number][] = [];
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        let s = 0;
        for (let t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) ** 2;
        all.push([s, j]);
      }
      all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(Array.from(one.indices.subarray(i * 15, i * 15 + 15))).toEqual([i, ...all.slice(0, 14).map((e) => e[1])]);
    }
    for (const threads of [2, 3]) expect(sameBytes(knnExactCpu(x, n, d, 15, { threads }), one)).toBe(true);
  });

  it("pbmc3k's 50 reference PCs: threads 2 and 3 give threads 1's bytes", () => {
    const pca = readMatrix(`${referenceDir("pbmc3k", "scanpy_like")}/pca.tsv.gz`, "PC_");
    const x = Float32Array.from(pca.data);
    const one = knnExactCpu(x, pca.n, pca.k, 15, { threads: 1 });
    for (const threads of [2, 3]) expect(sameBytes(knnExactCpu(x, pca.n, pca.k, 15, { threads }), one)).toBe(true);
  });
});

describe("knnExactCpu vs scanpy's exact kNN on the reference PCs", () => {
  for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(dataset, () => {
      const dir = referenceDir(dataset, "scanpy_like");
      const pca = readMatrix(`${dir}/pca.tsv.gz`, "PC_");
      const refIdx = readMatrix(`${dir}/knn_indices.tsv.gz`, "nn_");
      const refDist = readMatrix(`${dir}/knn_distances.tsv.gz`, "d_");
      const k = refIdx.k;
      expect(k).toBe(15);
      expect(refIdx.n).toBe(pca.n);
      const t0 = performance.now();
      const knn = knnExactCpu(Float32Array.from(pca.data), pca.n, pca.k, k);
      const ms = performance.now() - t0;
      const recall = knnRecall(knn.indices, refIdx.data, pca.n, k);
      let maxRel = 0;
      let maxSelf = 0;
      for (let i = 0; i < pca.n; i++) {
        expect(knn.indices[i * k]).toBe(i);
        expect(knn.distances[i * k]).toBe(0);
        maxSelf = Math.max(maxSelf, refDist.data[i * k]); // scanpy's self-distance: 0 up to GEMM rounding
        for (let j = 1; j < k; j++) {
          const want = refDist.data[i * k + j];
          maxRel = Math.max(maxRel, Math.abs(knn.distances[i * k + j] - want) / want);
        }
      }
      console.log(`${dataset}: n=${pca.n} d=${pca.k} k=${k} recall=${recall} maxRelDist=${maxRel.toExponential(2)} ${ms.toFixed(0)} ms`);
      expect(recall).toBeGreaterThanOrEqual(0.999);
      expect(maxRel).toBeLessThan(1e-4);
      expect(maxSelf).toBeLessThan(1e-5);
    });
  }
});
