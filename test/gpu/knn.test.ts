/**
 * knnExactGpu vs knnExactCpu on the real WebGPU adapter (lavapipe here). Random inputs of several
 * shapes (n = 1, k = n, n not a multiple of the 64-query workgroup or the 4-reference tile),
 * exact duplicates and integer grids (where f32 and f64 distances are both exact, so the order —
 * ties by smaller index — must match the CPU twin exactly), many query / reference chunks through
 * a forced small binding limit, poisoned device buffers, byte-identical reruns, and the pbmc3k
 * reference PCs. Timings are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gpu } from "../../src/gpu/device.js";
import { knnRecall } from "../../src/metrics/index.js";
import { type Knn, knnExactCpu, knnExactGpu } from "../../src/ops/knn.js";
import { readMatrix, referenceDir } from "../helpers/reference.js";
import { bytesEqual, rng, testGpu } from "./util.js";

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  // 4 KiB bindings: at d = 8, k = 10 a chunk holds 113 rows, so 700 rows make 7 query × 7 ref chunks.
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 4096 } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

function gaussian(n: number, d: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * d }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
}

/** Neighbour sets equal row by row, self first with distance 0, distances within rel of the CPU's. */
function expectSameSets(g: Knn, c: Knn, rel: number): void {
  expect(g.n).toBe(c.n);
  expect(g.k).toBe(c.k);
  expect(knnRecall(g.indices, c.indices, c.n, c.k)).toBe(1);
  let worst = 0;
  for (let i = 0; i < c.n; i++) {
    expect(g.indices[i * c.k]).toBe(i);
    expect(g.distances[i * c.k]).toBe(0);
    for (let j = 1; j < c.k; j++) {
      const t = i * c.k + j;
      expect(g.distances[t]).toBeGreaterThanOrEqual(g.distances[t - 1]);
      worst = Math.max(worst, Math.abs(g.distances[t] - c.distances[t]) / Math.max(c.distances[t], 1e-30));
    }
  }
  expect(worst).toBeLessThanOrEqual(rel);
}

describe("knnExactGpu on random gaussian inputs: same neighbour sets as knnExactCpu", () => {
  const shapes: [number, number, number][] = [
    [1, 3, 1],
    [2, 1, 2],
    [5, 4, 5], // k = n
    [63, 3, 63], // k = n, n not a multiple of 4 or 64
    [130, 7, 15],
    [301, 50, 30],
    [257, 17, 64], // largest k
    [1500, 50, 15],
    [90, 256, 10], // widest rows
  ];
  it.each(shapes)("n=%i d=%i k=%i", async (n, d, k) => {
    const x = gaussian(n, d, 1000 + n + d + k);
    expectSameSets(await knnExactGpu(gpu, x, n, d, k), knnExactCpu(x, n, d, k), 1e-5);
  });
});

describe("knnExactGpu with exact ties", () => {
  // Small integer coordinates: squared distances are exact in f32 and f64, so the two twins see the
  // same ties and must order them the same way (smaller index first), self always first.
  function grid(n: number, d: number, seed: number, dupEvery: number): Float32Array {
    const r = rng(seed);
    const x = Float32Array.from({ length: n * d }, () => Math.floor(r() * 5));
    for (let i = dupEvery; i < n; i += dupEvery) x.copyWithin(i * d, (i - dupEvery + 1) * d, (i - dupEvery + 2) * d);
    return x;
  }
  it.each([
    [200, 3, 20, 3],
    [333, 6, 15, 2],
    [129, 2, 64, 5],
  ])("integer grid n=%i d=%i k=%i, duplicates: identical to the CPU twin", async (n, d, k, dupEvery) => {
    const x = grid(n, d, 77 + n, dupEvery);
    const c = knnExactCpu(x, n, d, k);
    const g = await knnExactGpu(gpu, x, n, d, k);
    expect(Array.from(g.indices)).toEqual(Array.from(c.indices));
    expect(Array.from(g.distances)).toEqual(Array.from(c.distances));
  });

  it("all points identical: self first, then the others by index", async () => {
    const n = 40;
    const x = new Float32Array(n * 3).fill(1.5);
    const g = await knnExactGpu(gpu, x, n, 3, 10);
    for (let i = 0; i < n; i++) {
      const want = [i, ...Array.from({ length: n }, (_, j) => j).filter((j) => j !== i).slice(0, 9)];
      expect(Array.from(g.indices.subarray(i * 10, i * 10 + 10))).toEqual(want);
      expect(Array.from(g.distances.subarray(i * 10, i * 10 + 10))).toEqual(new Array(10).fill(0));
    }
  });
});

describe("knnExactGpu chunking and determinism", () => {
  it("many query and reference chunks (4 KiB bindings) give the same bytes as one chunk, run after run", async () => {
    const n = 700;
    const d = 8;
    const k = 10;
    const x = gaussian(n, d, 5);
    const a = await knnExactGpu(gpu, x, n, d, k);
    const b = await knnExactGpu(gpu, x, n, d, k);
    const c = await knnExactGpu(small, x, n, d, k);
    expect(bytesEqual(a.indices, b.indices)).toBe(true);
    expect(bytesEqual(a.distances, b.distances)).toBe(true);
    expect(bytesEqual(a.indices, c.indices)).toBe(true);
    expect(bytesEqual(a.distances, c.distances)).toBe(true);
    expectSameSets(c, knnExactCpu(x, n, d, k), 1e-5);
  });

  it("chunked with k = n and duplicates across chunk borders", async () => {
    const n = 60;
    const d = 30; // 4096 / (4 · 59) = 17 rows per chunk at k = n: 4 chunks
    const x = gaussian(n, d, 6);
    x.copyWithin(50 * d, 10 * d, 11 * d); // row 50 duplicates row 10 (other chunk)
    const c = knnExactCpu(x, n, d, n);
    const g = await knnExactGpu(small, x, n, d, n);
    expectSameSets(g, c, 1e-5);
    expect(g.indices[10 * n + 1]).toBe(50);
    expect(g.indices[50 * n + 1]).toBe(10);
    expect(g.distances[10 * n + 1]).toBe(0);
  });

  it("rejects k above 64, d above 256 and bad shapes", async () => {
    await expect(knnExactGpu(gpu, new Float32Array(100 * 2), 100, 2, 65)).rejects.toThrow(/64/);
    await expect(knnExactGpu(gpu, new Float32Array(10 * 257), 10, 257, 5)).rejects.toThrow(/256/);
    await expect(knnExactGpu(gpu, new Float32Array(10), 5, 3, 2)).rejects.toThrow(/expected/);
  });
});

describe("knnExactGpu on the pbmc3k reference PCs", () => {
  it("recall vs knnExactCpu >= 0.999, distances within 1e-4", async () => {
    const pca = readMatrix(`${referenceDir("pbmc3k", "scanpy_like")}/pca.tsv.gz`, "PC_");
    const x = Float32Array.from(pca.data);
    let t0 = performance.now();
    const c = knnExactCpu(x, pca.n, pca.k, 15);
    const tCpu = performance.now() - t0;
    await knnExactGpu(gpu, x.subarray(0, 64 * pca.k), 64, pca.k, 15); // compile the d = 50 pipeline outside the timing
    t0 = performance.now();
    const g = await knnExactGpu(gpu, x, pca.n, pca.k, 15);
    const tGpu = performance.now() - t0;
    console.log(`pbmc3k kNN ${pca.n} x ${pca.k}, k=15: CPU ${tCpu.toFixed(0)} ms, GPU ${tGpu.toFixed(0)} ms (${gpu.info.description})`);
    const recall = knnRecall(g.indices, c.indices, pca.n, 15);
    console.log(`pbmc3k kNN recall GPU vs CPU: ${recall}`);
    expect(recall).toBeGreaterThanOrEqual(0.999);
    let worst = 0;
    for (let i = 0; i < pca.n; i++) {
      expect(g.indices[i * 15]).toBe(i);
      for (let j = 1; j < 15; j++) {
        const t = i * 15 + j;
        // Position by position: the j-th distance is the same quantity even where a near-tie swaps the indices.
        worst = Math.max(worst, Math.abs(g.distances[t] - c.distances[t]) / c.distances[t]);
      }
    }
    console.log(`pbmc3k kNN max relative distance error: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(1e-4);
  });
});
