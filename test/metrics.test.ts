import { describe, expect, it } from "vitest";
import { fromDense } from "../src/core/csr.js";
import { adjustedRandIndex, jaccard, knnRecall, modularity, subspaceSimilarity, trustworthiness } from "../src/metrics/index.js";

describe("metrics on cases with known answers", () => {
  it("ARI: identical partitions up to relabeling score 1, a known 2x2 case matches the formula", () => {
    expect(adjustedRandIndex([0, 0, 1, 1, 2, 2], [5, 5, 3, 3, 9, 9])).toBeCloseTo(1, 12);
    // sklearn.metrics.adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 0, 1, 2])).toBeCloseTo(0.5714285714285715, 12);
    // Everything in one cluster vs all singletons: expected index equals index -> 0
    expect(adjustedRandIndex([0, 0, 0, 0], [0, 1, 2, 3])).toBeCloseTo(0, 12);
  });
  it("Jaccard", () => {
    expect(jaccard([1, 2, 3], [2, 3, 4])).toBeCloseTo(0.5, 12);
    expect(jaccard([], [])).toBe(1);
  });
  it("kNN recall counts shared neighbours", () => {
    expect(knnRecall([1, 2, 0, 2], [2, 1, 0, 1], 2, 2)).toBeCloseTo(0.75, 12);
  });
  it("subspace similarity: a rotated basis is the same subspace; orthogonal subspaces score 0", () => {
    const n = 50;
    const a = new Float64Array(n * 2);
    const b = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const x = Math.sin(i), y = Math.cos(3 * i);
      a[i * 2] = x; a[i * 2 + 1] = y;
      b[i * 2] = 0.6 * x + 0.8 * y; b[i * 2 + 1] = -0.8 * x + 0.6 * y;
    }
    expect(subspaceSimilarity(a, b, n, 2)).toBeCloseTo(1, 10);
    const e1 = new Float64Array([1, 0, 0, 0]);
    const e2 = new Float64Array([0, 1, 0, 0]);
    expect(subspaceSimilarity(e1, e2, 4, 1)).toBeCloseTo(0, 12);
  });
  it("trustworthiness is 1 for an embedding that keeps every distance order", () => {
    const n = 40;
    const x = new Float64Array(n * 3);
    const e = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) { x[i * 3] = i * i; e[i * 2] = i * i * 2; }
    expect(trustworthiness(x, 3, e, 2, n, 5)).toBeCloseTo(1, 12);
    const shuffled = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) shuffled[i * 2] = (i * 17) % n;
    expect(trustworthiness(x, 3, shuffled, 2, n, 5)).toBeLessThan(0.9);
  });
  it("modularity of two disjoint triangles split correctly equals 0.5 at resolution 1", () => {
    const A = new Float64Array(36);
    const edges = [[0, 1], [1, 2], [0, 2], [3, 4], [4, 5], [3, 5]];
    for (const [i, j] of edges) { A[i * 6 + j] = 1; A[j * 6 + i] = 1; }
    const g = fromDense(A, 6, 6);
    expect(modularity(g, [0, 0, 0, 1, 1, 1])).toBeCloseTo(0.5, 12);
    expect(modularity(g, [0, 0, 0, 0, 0, 0])).toBeCloseTo(0, 12);
  });
});
