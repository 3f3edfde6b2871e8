/**
 * fuzzySimplicialSetGpu / smoothKnnDistGpu vs their CPU twins on the real WebGPU adapter (lavapipe
 * here): kNN lists of random points (several shapes, k = n, n = 1, duplicates so rho = 0 and the
 * global sigma floor is used, missing neighbours marked −1), many row chunks through a forced small
 * binding limit, poisoned device buffers, byte-identical reruns, and scanpy's pbmc3k kNN lists.
 * Weights within 1e-4 with exactly the CPU's sparsity pattern; the SNN graph identical to the CPU's.
 * Timings are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import {
  fuzzySimplicialSetCpu,
  fuzzySimplicialSetGpu,
  smoothKnnDistCpu,
  smoothKnnDistGpu,
  snnGraphCpu,
  snnGraphGpu,
} from "../../src/ops/connectivities.js";
import { type Knn, knnExactCpu } from "../../src/ops/knn.js";
import { readMatrix, referenceDir } from "../helpers/reference.js";
import { bytesEqual, maxRelErr, rng, testGpu } from "./util.js";

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  // 4 KiB bindings: 68 rows per chunk at k = 15.
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 4096 } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

function randomKnn(n: number, d: number, k: number, seed: number, dupEvery = 0): Knn {
  const r = rng(seed);
  const x = Float32Array.from({ length: n * d }, () => r() * 4 - 2);
  if (dupEvery) for (let i = dupEvery; i < n; i += dupEvery) x.copyWithin(i * d, (i - 1) * d, i * d);
  return knnExactCpu(x, n, d, k);
}

function expectSameGraph(g: Csr, c: Csr): void {
  expect(g.nRows).toBe(c.nRows);
  expect(g.nCols).toBe(c.nCols);
  expect(Array.from(g.indptr)).toEqual(Array.from(c.indptr));
  expect(Array.from(g.indices)).toEqual(Array.from(c.indices));
  let worst = 0;
  for (let t = 0; t < c.data.length; t++) worst = Math.max(worst, Math.abs(g.data[t] - c.data[t]));
  expect(worst).toBeLessThanOrEqual(1e-4);
}

describe("fuzzySimplicialSetGpu vs fuzzySimplicialSetCpu", () => {
  const cases: [string, () => Knn][] = [
    ["n = 1, k = 1", () => randomKnn(1, 3, 1, 1)],
    ["n = 2, k = 2", () => randomKnn(2, 3, 2, 2)],
    ["k = n = 9", () => randomKnn(9, 4, 9, 3)],
    ["130 x 7, k = 15", () => randomKnn(130, 7, 15, 4)],
    ["1000 x 20, k = 30", () => randomKnn(1000, 20, 30, 5)],
    ["300 x 5, k = 15, every 3rd point duplicated", () => randomKnn(300, 5, 15, 6, 3)],
    ["all points identical (rho = 0, sigma at the global floor)", () => knnExactCpu(new Float32Array(40 * 2).fill(1), 40, 2, 10)],
  ];
  it.each(cases)("%s", async (_, make) => {
    const knn = make();
    const cs = smoothKnnDistCpu(knn);
    const gs = await smoothKnnDistGpu(gpu, knn);
    expect(Array.from(gs.rhos)).toEqual(Array.from(cs.rhos));
    expect(maxRelErr(gs.sigmas, cs.sigmas)).toBeLessThanOrEqual(1e-4);
    expectSameGraph(await fuzzySimplicialSetGpu(gpu, knn), fuzzySimplicialSetCpu(knn));
  });

  it("missing neighbours (index −1) are left out, as on the CPU", async () => {
    const knn = randomKnn(200, 6, 12, 7);
    const r = rng(8);
    for (let i = 0; i < knn.n; i++) if (r() < 0.3) knn.indices[i * knn.k + knn.k - 1] = -1;
    expectSameGraph(await fuzzySimplicialSetGpu(gpu, knn), fuzzySimplicialSetCpu(knn));
  });

  it("many row chunks (4 KiB bindings) give the same bytes as one chunk, run after run", async () => {
    const knn = randomKnn(700, 10, 15, 9);
    const a = await fuzzySimplicialSetGpu(gpu, knn);
    const b = await fuzzySimplicialSetGpu(gpu, knn);
    const c = await fuzzySimplicialSetGpu(small, knn);
    for (const g of [b, c]) {
      expect(bytesEqual(g.indptr, a.indptr)).toBe(true);
      expect(bytesEqual(g.indices, a.indices)).toBe(true);
      expect(bytesEqual(g.data, a.data)).toBe(true);
    }
    expectSameGraph(c, fuzzySimplicialSetCpu(knn));
  });
});

function expectIdentical(g: Csr, c: Csr): void {
  expect(g.nRows).toBe(c.nRows);
  expect(Array.from(g.indptr)).toEqual(Array.from(c.indptr));
  expect(Array.from(g.indices)).toEqual(Array.from(c.indices));
  expect(bytesEqual(g.data, c.data)).toBe(true);
}

describe("snnGraphGpu vs snnGraphCpu: identical graphs", () => {
  const cases: [string, () => Knn][] = [
    ["n = 1, k = 1", () => randomKnn(1, 3, 1, 11)],
    ["k = n = 9", () => randomKnn(9, 4, 9, 12)],
    ["130 x 7, k = 15", () => randomKnn(130, 7, 15, 13)],
    ["800 x 10, k = 20", () => randomKnn(800, 10, 20, 14)],
    ["300 x 5, k = 15, duplicates", () => randomKnn(300, 5, 15, 15, 3)],
  ];
  it.each(cases)("%s", async (_, make) => {
    const knn = make();
    for (const prune of [0, 1 / 15, 0.3]) expectIdentical(await snnGraphGpu(gpu, knn, prune), snnGraphCpu(knn, prune));
  });

  it("many row chunks (4 KiB bindings)", async () => {
    const knn = randomKnn(60, 6, 15, 16);
    expectIdentical(await snnGraphGpu(small, knn, 1 / 15), snnGraphCpu(knn, 1 / 15));
    expectIdentical(await snnGraphGpu(small, knn, 0), snnGraphCpu(knn, 0));
  });

  it("rejects a row listing a neighbour twice", async () => {
    const knn = randomKnn(20, 3, 4, 17);
    knn.indices[7] = knn.indices[6];
    await expect(snnGraphGpu(gpu, knn, 0)).rejects.toThrow(/twice/);
  });
});

describe("fuzzySimplicialSetGpu on pbmc3k", () => {
  it("scanpy's kNN lists and our exact kNN: same graph as the CPU twin, weights within 1e-4", async () => {
    const dir = referenceDir("pbmc3k", "scanpy_like");
    const idx = readMatrix(`${dir}/knn_indices.tsv.gz`, "nn_");
    const dist = readMatrix(`${dir}/knn_distances.tsv.gz`, "d_");
    const ref: Knn = { n: idx.n, k: idx.k, indices: Int32Array.from(idx.data), distances: Float32Array.from(dist.data) };
    expectSameGraph(await fuzzySimplicialSetGpu(gpu, ref), fuzzySimplicialSetCpu(ref));

    const pca = readMatrix(`${dir}/pca.tsv.gz`, "PC_");
    const knn = knnExactCpu(Float32Array.from(pca.data), pca.n, pca.k, 15);
    let t0 = performance.now();
    const c = fuzzySimplicialSetCpu(knn);
    const tCpu = performance.now() - t0;
    t0 = performance.now();
    const g = await fuzzySimplicialSetGpu(gpu, knn);
    const tGpu = performance.now() - t0;
    console.log(`pbmc3k connectivities (n=${knn.n}, k=15): CPU ${tCpu.toFixed(0)} ms, GPU ${tGpu.toFixed(0)} ms`);
    expectSameGraph(g, c);

    t0 = performance.now();
    const sc = snnGraphCpu(knn, 1 / 15);
    const tSnnCpu = performance.now() - t0;
    t0 = performance.now();
    const sg = await snnGraphGpu(gpu, knn, 1 / 15);
    const tSnnGpu = performance.now() - t0;
    console.log(`pbmc3k SNN graph (k=15, prune 1/15): CPU ${tSnnCpu.toFixed(0)} ms, GPU ${tSnnGpu.toFixed(0)} ms`);
    expectIdentical(sg, sc);
  });
});
