/**
 * fuzzySimplicialSetGpu / smoothKnnDistGpu vs their CPU twins on the real WebGPU adapter (lavapipe
 * here): kNN lists of random points (several shapes, k = n, n = 1, duplicates so rho = 0 and the
 * global sigma floor is used, missing neighbours marked −1), synthetic kNN lists (hub nodes in many
 * lists, a node in every list, tied distances, missing neighbours anywhere in a row, a column
 * listed twice in a row, weights that underflow to 0), row/column chunks through forced small
 * binding limits, poisoned device buffers, byte-identical reruns, and scanpy's pbmc3k kNN lists.
 * The device's fuzzy union is checked bit for bit against an independent f32 union (maps, no
 * sorting tricks) of the device's own directed weights — the same reference reproduces the CPU
 * twin bit for bit from the CPU's weights — and end to end against the CPU twin: its sparsity
 * pattern, weights within 1e-4 relative + 1e-6 absolute, entries below the smallest normal f32
 * left out (the directed weights differ: device exp's last bits, sigma a few 1e-6 apart where
 * umap's binary search stops a step apart or the floor is rounded differently, subnormal
 * weights flushed to 0 by lavapipe). pbmc3k is also held to 1e-4 relative with no exception.
 * The SNN graph is identical to the CPU's. Timings are printed, never asserted.
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

/**
 * Synthetic kNN lists: self first at distance 0, then k−1 slots whose columns are one of `hubs`
 * nodes with probability hubFrac, else uniform (distinct within the row unless dupCols); sorted
 * distances rounded to 1/8 when ties; a fraction of slots missing (−1); a fraction of rows whose
 * last distance is 1000, far beyond the rest, so that weight underflows to 0.
 */
function syntheticKnn(
  n: number,
  k: number,
  seed: number,
  o: { hubs?: number; hubFrac?: number; missing?: number; dupCols?: boolean; ties?: boolean; far?: number } = {},
): Knn {
  const r = rng(seed);
  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  const d = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const row = indices.subarray(i * k, (i + 1) * k);
    row[0] = i;
    for (let j = 1; j < k; j++) {
      for (;;) {
        const c = o.hubs && r() < (o.hubFrac ?? 0) ? Math.floor(r() * o.hubs) : Math.floor(r() * n);
        if (o.dupCols || !row.subarray(0, j).includes(c) || n < k) {
          row[j] = c;
          break;
        }
      }
      if (r() < (o.missing ?? 0)) row[j] = -1;
      d[j] = 0.2 + 3 * r();
      if (o.ties) d[j] = Math.round(d[j] * 8) / 8;
    }
    d[0] = 0;
    d.subarray(1).sort();
    if (k > 2 && r() < (o.far ?? 0)) d[k - 1] = 1000;
    distances.set(d, i * k);
  }
  return { n, k, indices, distances };
}

/**
 * A + Aᵀ − A∘Aᵀ in float32 from directed weights w (n × k), written independently of the code
 * under test: A's entries in a Map per row (a column listed twice: weights added in slot order),
 * zeros dropped; each union entry (a, b) then (a + b) − a·b, rounded as scipy's float32.
 */
function referenceUnion(knn: Knn, w: Float32Array): Csr {
  const { n, k, indices } = knn;
  const f32 = Math.fround;
  const A = Array.from({ length: n }, () => new Map<number, number>());
  for (let t = 0; t < n * k; t++) {
    const c = indices[t];
    if (c < 0) continue;
    const row = A[Math.floor(t / k)];
    const prev = row.get(c);
    row.set(c, prev === undefined ? w[t] : f32(prev + w[t]));
  }
  const U = Array.from({ length: n }, () => new Map<number, [number, number]>());
  const at = (i: number, c: number) => U[i].get(c) ?? U[i].set(c, [0, 0]).get(c)!;
  A.forEach((row, i) => {
    for (const [c, a] of row) {
      if (a === 0) continue;
      at(i, c)[0] = a;
      at(c, i)[1] = a;
    }
  });
  const indptr = new Float64Array(n + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  U.forEach((row, i) => {
    for (const c of [...row.keys()].sort((x, y) => x - y)) {
      const [a, b] = row.get(c)!;
      const v = f32(f32(a + b) - f32(a * b));
      if (v !== 0) {
        cols.push(c);
        vals.push(v);
      }
    }
    indptr[i + 1] = cols.length;
  });
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(cols), data: Float32Array.from(vals) };
}

/** The CPU twin's directed weights (compute_membership_strengths on smoothKnnDistCpu). */
function cpuWeights(knn: Knn): Float32Array {
  const { n, k, indices, distances } = knn;
  const { sigmas, rhos } = smoothKnnDistCpu(knn);
  const w = new Float32Array(n * k);
  for (let t = 0; t < n * k; t++) {
    const i = Math.floor(t / k);
    const c = indices[t];
    const dd = Math.fround(distances[t] - rhos[i]);
    if (c < 0 || c === i) continue;
    w[t] = dd <= 0 || sigmas[i] === 0 ? 1 : Math.fround(Math.exp(-Math.fround(dd / sigmas[i])));
  }
  return w;
}

function expectBytes(g: Csr, c: Csr): void {
  expect(g.nRows).toBe(c.nRows);
  expect(bytesEqual(g.indptr, c.indptr)).toBe(true);
  expect(bytesEqual(g.indices, c.indices)).toBe(true);
  expect(bytesEqual(g.data, c.data)).toBe(true);
}

/**
 * g = fuzzySimplicialSetGpu(dev, knn): bit-identical to the reference union of the device's own
 * weights; the reference bit-identical to the CPU twin from the CPU's weights; g has the CPU
 * twin's pattern and weights within 1e-4 relative. Returns the relative error, for the log.
 */
async function expectParity(dev: Gpu, knn: Knn, g: Csr): Promise<number> {
  const c = fuzzySimplicialSetCpu(knn);
  expectBytes(referenceUnion(knn, cpuWeights(knn)), c);
  expectBytes(g, referenceUnion(knn, (await smoothKnnDistGpu(dev, knn)).weights));
  return expectSameGraph(g, c);
}

/** m without entries below the smallest normal f32 (lavapipe flushes subnormal weights to 0). */
function dropSubnormal(m: Csr): Csr {
  const keep: number[] = [];
  const indptr = new Float64Array(m.nRows + 1);
  for (let i = 0; i < m.nRows; i++) {
    for (let p = m.indptr[i]; p < m.indptr[i + 1]; p++) if (Math.abs(m.data[p]) >= 2 ** -126) keep.push(p);
    indptr[i + 1] = keep.length;
  }
  return { ...m, indptr, indices: Uint32Array.from(keep, (p) => m.indices[p]), data: Float32Array.from(keep, (p) => m.data[p]) };
}

/**
 * The CPU twin's pattern (entries of normal magnitude) and |g − c| ≤ 1e-4·|c| + 1e-6: weights
 * near 1 agree to 1e-4 relative, tiny weights (exp of a large argument amplifies sigma's
 * difference) to 1e-6 absolute. Returns the largest relative difference, for the log.
 */
function expectSameGraph(g0: Csr, c0: Csr): number {
  const g = dropSubnormal(g0);
  const c = dropSubnormal(c0);
  expect(g.nRows).toBe(c.nRows);
  expect(g.nCols).toBe(c.nCols);
  expect(Array.from(g.indptr)).toEqual(Array.from(c.indptr));
  expect(Array.from(g.indices)).toEqual(Array.from(c.indices));
  let excess = 0;
  for (let t = 0; t < c.data.length; t++) excess = Math.max(excess, Math.abs(g.data[t] - c.data[t]) - (1e-4 * Math.abs(c.data[t]) + 1e-6));
  expect(excess).toBeLessThanOrEqual(0);
  return maxRelErr(g.data, c.data);
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
    await expectParity(gpu, knn, await fuzzySimplicialSetGpu(gpu, knn));
  });

  it("missing neighbours (index −1) are left out, as on the CPU", async () => {
    const knn = randomKnn(200, 6, 12, 7);
    const r = rng(8);
    for (let i = 0; i < knn.n; i++) if (r() < 0.3) knn.indices[i * knn.k + knn.k - 1] = -1;
    await expectParity(gpu, knn, await fuzzySimplicialSetGpu(gpu, knn));
  });

  const synthetic: [string, () => Knn][] = [
    ["50 rows, k = 5, columns listed twice, self listed again, 20% missing", () => syntheticKnn(50, 5, 21, { dupCols: true, missing: 0.2 })],
    ["3000 rows, k = 15, 3 hubs in ~1400 lists each, tied distances, 5% missing, 3% far", () =>
      syntheticKnn(3000, 15, 22, { hubs: 3, hubFrac: 0.1, ties: true, missing: 0.05, far: 0.03 })],
    ["2000 rows, k = 30, hubs, columns listed twice, tied distances", () => syntheticKnn(2000, 30, 23, { hubs: 5, hubFrac: 0.05, dupCols: true, ties: true })],
    ["2500 x 8 points, k = 15", () => randomKnn(2500, 8, 15, 24)],
    ["all slots missing but self", () => syntheticKnn(30, 4, 25, { missing: 1 })],
  ];
  it.each(synthetic)("%s", async (_, make) => {
    const knn = make();
    const rel = await expectParity(gpu, knn, await fuzzySimplicialSetGpu(gpu, knn));
    console.log(`union bit-identical to the reference on device weights; vs CPU twin max rel ${rel.toExponential(2)}`);
  });

  it("many row chunks (4 KiB bindings) give the same bytes as one chunk, run after run", async () => {
    const knn = randomKnn(700, 10, 15, 9);
    const a = await fuzzySimplicialSetGpu(gpu, knn);
    const b = await fuzzySimplicialSetGpu(gpu, knn);
    const c = await fuzzySimplicialSetGpu(small, knn);
    for (const g of [b, c]) expectBytes(g, a);
    await expectParity(small, knn, c);
  });

  it("hubs and a node in every list through 4 KiB and 16 KiB bindings: same bytes as one chunk", async () => {
    // Node 0 in all 1000 lists: its reverse list and its union row nearly fill a 4 KiB binding.
    const star = syntheticKnn(1000, 5, 31, { missing: 0.1 });
    for (let i = 1; i < star.n; i++) star.indices[i * star.k + 1] = 0;
    const hubs = syntheticKnn(3000, 15, 32, { hubs: 4, hubFrac: 0.08, ties: true, missing: 0.05, far: 0.02 });
    const mid = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: 16384 } });
    try {
      for (const [knn, dev] of [[star, small], [hubs, mid]] as const) {
        const a = await fuzzySimplicialSetGpu(gpu, knn);
        const c1 = await fuzzySimplicialSetGpu(dev, knn);
        const c2 = await fuzzySimplicialSetGpu(dev, knn);
        expectBytes(c1, a);
        expectBytes(c2, a);
        await expectParity(gpu, knn, a);
      }
    } finally {
      mid.destroy();
    }
  });

  it("rejects neighbour indices ≥ n", async () => {
    const knn = syntheticKnn(20, 4, 33);
    knn.indices[9] = 20;
    await expect(fuzzySimplicialSetGpu(gpu, knn)).rejects.toThrow(RangeError);
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
  it("scanpy's kNN lists and our exact kNN: union bit-identical on device weights, CPU twin's pattern", async () => {
    const dir = referenceDir("pbmc3k", "scanpy_like");
    const idx = readMatrix(`${dir}/knn_indices.tsv.gz`, "nn_");
    const dist = readMatrix(`${dir}/knn_distances.tsv.gz`, "d_");
    const ref: Knn = { n: idx.n, k: idx.k, indices: Int32Array.from(idx.data), distances: Float32Array.from(dist.data) };
    const relRef = await expectParity(gpu, ref, await fuzzySimplicialSetGpu(gpu, ref));

    const pca = readMatrix(`${dir}/pca.tsv.gz`, "PC_");
    const knn = knnExactCpu(Float32Array.from(pca.data), pca.n, pca.k, 15);
    let t0 = performance.now();
    const c = fuzzySimplicialSetCpu(knn);
    const tCpu = performance.now() - t0;
    t0 = performance.now();
    const g = await fuzzySimplicialSetGpu(gpu, knn);
    const tGpu = performance.now() - t0;
    const rel = await expectParity(gpu, knn, g);
    for (const [x, y] of [[g, c], [await fuzzySimplicialSetGpu(gpu, ref), fuzzySimplicialSetCpu(ref)]]) {
      expect(Array.from(x.indptr)).toEqual(Array.from(y.indptr));
      expect(maxRelErr(x.data, y.data)).toBeLessThanOrEqual(1e-4);
    }
    console.log(
      `pbmc3k connectivities (n=${knn.n}, k=15): CPU ${tCpu.toFixed(0)} ms, GPU ${tGpu.toFixed(0)} ms; ` +
        `max rel vs CPU twin ${relRef.toExponential(2)} (scanpy kNN), ${rel.toExponential(2)} (exact kNN)`,
    );

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
