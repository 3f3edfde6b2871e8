/**
 * knnIvfGpu vs knnIvfCpu on the real WebGPU adapter (lavapipe here): the twins must agree bit for
 * bit (indices and distances) — several shapes (n not a multiple of the 64-query workgroup, d not
 * a multiple of 4, k = n, more lists than the data fills, duplicates), many query / reference /
 * centroid chunks through a forced small binding limit, poisoned device buffers, byte-identical
 * reruns. Timings are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gpu } from "../../src/gpu/device.js";
import type { Knn } from "../../src/ops/knn.js";
import { type IvfOptions, knnIvfCpu, knnIvfGpu } from "../../src/ops/knnIvf.js";
import { bytesEqual, rng, testGpu } from "./util.js";

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  // 2 KiB bindings: at d = 8 a chunk holds 64 rows, so 500 rows make 8 query × 8 reference chunks.
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 2048 } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

/** Gaussian blobs with per-coordinate scales decaying like PCs. */
function blobs(n: number, d: number, nc: number, seed: number): Float32Array {
  const r = rng(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const centers = Float64Array.from({ length: nc * d }, (_, i) => 2 * g() * Math.exp(-(i % d) / 12));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * nc);
    for (let t = 0; t < d; t++) x[i * d + t] = centers[c * d + t] + g() * Math.exp(-t / 12);
  }
  return x;
}

function expectIdentical(g: Knn, c: Knn): void {
  expect(g.n).toBe(c.n);
  expect(g.k).toBe(c.k);
  expect(bytesEqual(g.indices, c.indices)).toBe(true);
  expect(bytesEqual(g.distances, c.distances)).toBe(true);
}

describe("knnIvfGpu is bit-identical to knnIvfCpu", () => {
  const cases: [string, number, number, number, IvfOptions][] = [
    ["n = 1", 1, 3, 1, {}],
    ["k = n = 5", 5, 4, 5, {}],
    ["d = 1, n = 130", 130, 1, 15, { nProbe: 2 }],
    ["n = 301 (not a multiple of 64), d = 7", 301, 7, 15, { nProbe: 3, seed: 4 }],
    ["more lists than clusters (empty lists), under-filled probes", 400, 6, 30, { nLists: 60, nProbe: 1, kmeansIters: 5 }],
    ["d = 50, default options", 3000, 50, 15, {}],
  ];
  for (const [name, n, d, k, opts] of cases) {
    it(name, async () => {
      const x = blobs(n, d, 7, n + d);
      expectIdentical(await knnIvfGpu(gpu, x, n, d, k, opts), knnIvfCpu(x, n, d, k, opts));
    });
  }

  it("exact duplicates: same ties, same order", async () => {
    const base = blobs(50, 9, 3, 2);
    const x = new Float32Array(300 * 9);
    const r = rng(5);
    for (let i = 0; i < 300; i++) {
      const j = Math.floor(r() * 50);
      x.set(base.subarray(j * 9, j * 9 + 9), i * 9);
    }
    const c = knnIvfCpu(x, 300, 9, 12, { nProbe: 3 });
    expectIdentical(await knnIvfGpu(gpu, x, 300, 9, 12, { nProbe: 3 }), c);
    expect(c.distances.some((v, t) => t % 12 > 0 && v === 0)).toBe(true); // duplicates were found
  });

  it("many chunks under a forced 2 KiB binding limit", async () => {
    const x = blobs(500, 8, 5, 11);
    const opts = { nLists: 80, nProbe: 5 }; // 80 centroids × 32 bytes: two centroid chunks too
    expectIdentical(await knnIvfGpu(small, x, 500, 8, 10, opts), knnIvfCpu(x, 500, 8, 10, opts));
  });

  it("same bytes twice, and a different seed changes the lists", async () => {
    const x = blobs(2000, 20, 9, 3);
    const t0 = performance.now();
    const a = await knnIvfGpu(gpu, x, 2000, 20, 15, { nProbe: 2 });
    const t1 = performance.now();
    const b = await knnIvfGpu(gpu, x, 2000, 20, 15, { nProbe: 2 });
    console.log(`knnIvfGpu 2000 × 20: ${((t1 - t0) / 1000).toFixed(2)} s`);
    expectIdentical(a, b);
    const c = await knnIvfGpu(gpu, x, 2000, 20, 15, { nProbe: 2, seed: 9 });
    expect(bytesEqual(a.indices, c.indices)).toBe(false);
  });
});
