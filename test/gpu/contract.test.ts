/**
 * contractGraphGpu (kernels/contract.wgsl) against the CPU aggregateGraph run on the quantized
 * weights (wq/S), its rows sorted by neighbour id: identical row pointers and neighbours, identical
 * exact fixed-point weights and strengths, the CPU self weight equal to kq − Σ row wq (the arcs
 * inside a label went into kq). Random symmetric graphs of several shapes and random labellings,
 * a two-level chain, identical bytes run to run, the identity labelling reproducing the uploaded
 * graph bit for bit (device f32 rounding = host f32 rounding), and the binding-limit check.
 * Device buffers are poisoned so unwritten outputs show.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireGpu, GpuError, type Gpu } from "../../src/gpu/device.js";
import { aggregateGraph, type WGraph } from "../../src/ops/communityCommon.js";
import { contractGraphGpu, contractGraphHost, destroyGraph, fitsContractGpu, fixedPointScale, readGraph, uploadGraph, type DeviceGraph } from "../../src/ops/graphGpu.js";
import { bytesEqual, rng, testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

interface Shape {
  n: number;
  /** Mean undirected edges per node. */
  degree: number;
  /** Fraction of nodes with no arcs. */
  isolated?: number;
  /** Arc weights 10^(lo..hi). */
  decades?: [number, number];
  /** Fraction of nodes with a self loop. */
  selfLoops?: number;
}

/** Random symmetric WGraph, rows in random (not sorted) order, both directions equal weights. */
function randomGraph(s: Shape, seed: number): WGraph {
  const r = rng(seed);
  const [lo, hi] = s.decades ?? [-1, 1];
  const weight = () => 10 ** (lo + (hi - lo) * r());
  const live = Array.from({ length: s.n }, () => r() >= (s.isolated ?? 0));
  const rows: Map<number, number>[] = Array.from({ length: s.n }, () => new Map());
  const liveIds = live.flatMap((l, i) => (l ? [i] : []));
  if (liveIds.length > 1) {
    for (let e = 0; e < Math.round((s.degree * liveIds.length) / 2); e++) {
      const a = liveIds[Math.floor(r() * liveIds.length)];
      const b = liveIds[Math.floor(r() * liveIds.length)];
      if (a === b || rows[a].has(b)) continue;
      const w = weight();
      rows[a].set(b, w);
      rows[b].set(a, w);
    }
  }
  const indptr = new Int32Array(s.n + 1);
  const indices: number[] = [];
  const weights: number[] = [];
  const selfWeight = new Float64Array(s.n);
  const nodeWeight = new Float64Array(s.n);
  rows.forEach((row, v) => {
    const entries = [...row.entries()];
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [entries[i], entries[j]] = [entries[j], entries[i]];
    }
    if (r() < (s.selfLoops ?? 0)) selfWeight[v] = weight();
    nodeWeight[v] = selfWeight[v];
    for (const [u, w] of entries) {
      indices.push(u);
      weights.push(w);
      nodeWeight[v] += w;
    }
    indptr[v + 1] = indices.length;
  });
  return { n: s.n, indptr, indices: Int32Array.from(indices), weights: Float64Array.from(weights), nodeWeight, selfWeight };
}

/** Dense random labels 0..N−1, every value used (N ≤ n). */
function randomLabels(n: number, N: number, seed: number): Uint32Array {
  const r = rng(seed);
  const labels = Uint32Array.from({ length: n }, (_, v) => (v < N ? v : Math.floor(r() * N)));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [labels[i], labels[j]] = [labels[j], labels[i]];
  }
  return labels;
}

/** g with every weight replaced by its fixed-point value /S, as uploadGraph quantizes it. */
function quantized(g: WGraph, S: number): WGraph {
  const weights = g.weights.map((w) => Math.round(w * S) / S);
  const selfWeight = g.selfWeight.map((w) => Math.round(w * S) / S);
  const nodeWeight = new Float64Array(g.n);
  for (let v = 0; v < g.n; v++) {
    nodeWeight[v] = selfWeight[v];
    for (let k = g.indptr[v]; k < g.indptr[v + 1]; k++) nodeWeight[v] += weights[k];
  }
  return { ...g, weights, selfWeight, nodeWeight };
}

/** f32 weight as the brief defines it: (f32(hi)·2^32 + f32(lo)) / S, each step in f32. */
function f32Of(q: number, S: number): number {
  const hi = Math.floor(q / 2 ** 32);
  const lo = q - hi * 2 ** 32;
  return Math.fround(Math.fround(Math.fround(hi) * 2 ** 32 + Math.fround(lo)) / S);
}

type HostGraph = Awaited<ReturnType<typeof readGraph>>;

/**
 * The device graph equals the CPU graph c (exact dyadic weights) after sorting c's rows: same
 * pointers, neighbours and fixed-point weights; kq = S·(self weight + row weights); f32 weights
 * recomputed from wq.
 */
function expectSameGraph(got: HostGraph, c: WGraph, S: number): void {
  expect(got.indptr.length).toBe(c.n + 1);
  expect(Array.from(got.indptr)).toEqual(Array.from(c.indptr));
  const wantIdx: number[] = [];
  const wantWq: number[] = [];
  for (let v = 0; v < c.n; v++) {
    const ks = Array.from({ length: c.indptr[v + 1] - c.indptr[v] }, (_, i) => c.indptr[v] + i).sort((a, b) => c.indices[a] - c.indices[b]);
    for (const k of ks) {
      wantIdx.push(c.indices[k]);
      wantWq.push(c.weights[k] * S);
    }
  }
  expect(Array.from(got.indices)).toEqual(wantIdx);
  expect(wantWq.every(Number.isInteger)).toBe(true);
  expect(Array.from(got.wq)).toEqual(wantWq);
  expect(Array.from(got.weights)).toEqual(wantWq.map((q) => f32Of(q, S)));
  for (let v = 0; v < c.n; v++) {
    let row = 0;
    for (let k = got.indptr[v]; k < got.indptr[v + 1]; k++) row += got.wq[k];
    // Intra-label arcs and self loops are exactly what kq holds beyond the row.
    expect(got.kq[v] - row).toBe(c.selfWeight[v] * S);
  }
  expect(Array.from(got.kq)).toEqual(Array.from(c.nodeWeight, (w) => w * S));
}

async function contract(g: DeviceGraph, labels: Uint32Array, N: number): Promise<DeviceGraph> {
  const buf = gpu.upload(labels, "contract.labels");
  try {
    return await contractGraphGpu(gpu, g, buf, N, "contract.test");
  } finally {
    buf.destroy();
  }
}

/** Uploads g, contracts it by labels, checks against the CPU, returns both levels' results. */
async function checkContraction(g: WGraph, labels: Uint32Array, N: number): Promise<{ coarse: DeviceGraph; cpu: WGraph; host: HostGraph; fine: DeviceGraph }> {
  const S = fixedPointScale(g);
  const fine = uploadGraph(gpu, g, "contract.fine");
  const q = quantized(g, S);
  expectSameGraph(await readGraph(gpu, fine), q, S);
  const coarse = await contract(fine, labels, N);
  expect(coarse.n).toBe(N);
  expect(coarse.S).toBe(S);
  const cpu = aggregateGraph(q, Int32Array.from(labels), N);
  const host = await readGraph(gpu, coarse);
  expect(coarse.nArcs).toBe(cpu.indices.length);
  expectSameGraph(host, cpu, S);
  return { coarse, cpu, host, fine };
}

describe("fixedPointScale", () => {
  const one = (weights: number[], self = 0): WGraph => ({
    n: 2,
    indptr: Int32Array.from([0, weights.length, weights.length]),
    indices: new Int32Array(weights.length).fill(1),
    weights: Float64Array.from(weights),
    nodeWeight: new Float64Array(2),
    selfWeight: Float64Array.from([self, 0]),
  });
  it("is 2^24 for unit weights, lower as the largest arc or the total grows", () => {
    expect(fixedPointScale(one([1]))).toBe(2 ** 24);
    expect(fixedPointScale(one([]))).toBe(2 ** 24);
    // 1000·2^21 ≈ 2.10e9 < 2^31 ≤ 1000·2^22.
    expect(fixedPointScale(one([1000, 3]))).toBe(2 ** 21);
    // 2^40 of self weight: S·2^40 < 2^52 → S = 2^11.
    expect(fixedPointScale(one([1], 2 ** 40))).toBe(2 ** 11);
    // Arcs above 2^31: S < 1.
    expect(fixedPointScale(one([2 ** 35]))).toBe(2 ** -5);
  });
  it("rejects negative and non-finite weights", () => {
    expect(() => fixedPointScale(one([-1]))).toThrow(/non-negative/);
    expect(() => fixedPointScale(one([NaN]))).toThrow(/non-negative/);
  });
});

describe("contractGraphGpu", () => {
  // [name, shape, labels, whether some coarse arc must exceed 2^32 (the 64-bit carry)]
  const shapes: [string, Shape, number, boolean][] = [
    ["isolated nodes", { n: 300, degree: 4, isolated: 0.4, selfLoops: 0.2 }, 40, false],
    ["weights spanning six decades, arc sums past 2^32", { n: 400, degree: 10, decades: [-4, 2], selfLoops: 0.5 }, 8, true],
    ["a few thousand nodes, ~15 arcs each, small clusters", { n: 3000, degree: 15 }, 700, false],
    ["a few thousand nodes, ~15 arcs each, large clusters", { n: 3000, degree: 15, decades: [0, 2] }, 30, true],
    ["arcs above 2^31 (S < 1)", { n: 200, degree: 6, decades: [8, 11] }, 5, true],
  ];
  shapes.forEach(([name, shape, N, wide], i) => {
    it(`matches aggregateGraph on quantized weights: ${name}`, async () => {
      const g = randomGraph(shape, 100 + i);
      const { coarse, fine, host } = await checkContraction(g, randomLabels(g.n, N, 200 + i), N);
      if (wide) expect(Math.max(...host.wq)).toBeGreaterThan(2 ** 32);
      destroyGraph(coarse);
      destroyGraph(fine);
    });
  });

  it("one node, with and without a self loop", async () => {
    for (const self of [0, 2.5]) {
      const g: WGraph = { n: 1, indptr: Int32Array.from([0, 0]), indices: new Int32Array(0), weights: new Float64Array(0), nodeWeight: Float64Array.from([self]), selfWeight: Float64Array.from([self]) };
      const { coarse, fine, host } = await checkContraction(g, Uint32Array.from([0]), 1);
      expect(Array.from(host.kq)).toEqual([self * 2 ** 24]);
      destroyGraph(coarse);
      destroyGraph(fine);
    }
  });

  it("the empty graph", async () => {
    const g: WGraph = { n: 0, indptr: Int32Array.from([0]), indices: new Int32Array(0), weights: new Float64Array(0), nodeWeight: new Float64Array(0), selfWeight: new Float64Array(0) };
    const { coarse, fine, host } = await checkContraction(g, new Uint32Array(0), 0);
    expect(Array.from(host.indptr)).toEqual([0]);
    destroyGraph(coarse);
    destroyGraph(fine);
  });

  it("one label holding every node: no arcs left, kq = total strength", async () => {
    const g = randomGraph({ n: 500, degree: 8, decades: [0, 2], selfLoops: 0.1 }, 7);
    const { coarse, fine, host } = await checkContraction(g, new Uint32Array(g.n), 1);
    expect(coarse.nArcs).toBe(0);
    const fineHost = await readGraph(gpu, fine);
    expect(host.kq[0]).toBe(fineHost.kq.reduce((a, b) => a + b, 0));
    expect(host.kq[0]).toBeGreaterThan(2 ** 32); // the 64-bit carry was exercised
    destroyGraph(coarse);
    destroyGraph(fine);
  });

  it("every node its own label: the identity reproduces the uploaded graph bit for bit, a permutation relabels it", async () => {
    const g = randomGraph({ n: 1000, degree: 12, decades: [-3, 2], selfLoops: 0.3 }, 8);
    const fine = uploadGraph(gpu, g, "contract.fine");
    const id = await contract(fine, Uint32Array.from({ length: g.n }, (_, v) => v), g.n);
    const [a, b] = [await readGraph(gpu, fine), await readGraph(gpu, id)];
    for (const key of ["indptr", "indices", "wq", "weights", "kq"] as const) expect(bytesEqual(a[key], b[key])).toBe(true);
    destroyGraph(id);
    destroyGraph(fine);
    const { coarse, fine: f2 } = await checkContraction(g, randomLabels(g.n, g.n, 9), g.n);
    destroyGraph(coarse);
    destroyGraph(f2);
  });

  it("contracted graphs are valid inputs: a two-level chain matches aggregateGraph twice", async () => {
    const g = randomGraph({ n: 2000, degree: 15, decades: [-1, 1], selfLoops: 0.1 }, 10);
    const N1 = 400;
    const N2 = 37;
    const { coarse, cpu, fine } = await checkContraction(g, randomLabels(g.n, N1, 11), N1);
    const labels2 = randomLabels(N1, N2, 12);
    const coarser = await contract(coarse, labels2, N2);
    const cpu2 = aggregateGraph(cpu, Int32Array.from(labels2), N2);
    expectSameGraph(await readGraph(gpu, coarser), cpu2, coarse.S);
    for (const d of [coarser, coarse, fine]) destroyGraph(d);
  });

  it("gives identical bytes run to run", async () => {
    const g = randomGraph({ n: 2500, degree: 15, decades: [-3, 2] }, 13);
    const labels = randomLabels(g.n, 200, 14);
    const fine = uploadGraph(gpu, g, "contract.fine");
    const runs: HostGraph[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await contract(fine, labels, 200);
      runs.push(await readGraph(gpu, c));
      destroyGraph(c);
    }
    destroyGraph(fine);
    for (const key of ["indptr", "indices", "wq", "weights", "kq"] as const) expect(bytesEqual(runs[0][key], runs[1][key])).toBe(true);
  });

  it("rejects labels out of range and label counts that cannot be dense", async () => {
    const g = randomGraph({ n: 50, degree: 4 }, 15);
    const fine = uploadGraph(gpu, g, "contract.fine");
    const labels = randomLabels(g.n, 5, 16);
    labels[7] = 5;
    await expect(contract(fine, labels, 5)).rejects.toThrow(/1 labels are not below nLabels = 5/);
    await expect(contract(fine, labels, 0)).rejects.toThrow(GpuError);
    await expect(contract(fine, labels, 51)).rejects.toThrow(GpuError);
    destroyGraph(fine);
  });

  it("contractGraphHost (the fallback past the binding limit) gives contractGraphGpu's bytes", async () => {
    const cases: [Shape, number][] = [
      [{ n: 400, degree: 10, decades: [-4, 2], selfLoops: 0.5 }, 8],
      [{ n: 3000, degree: 15 }, 700],
      [{ n: 300, degree: 4, isolated: 0.4, selfLoops: 0.2 }, 300],
      [{ n: 200, degree: 6, decades: [-9, 0] }, 20], // weights that round to 0 still make entries
    ];
    for (const [i, [shape, N]] of cases.entries()) {
      const g = randomGraph(shape, 40 + i);
      const fine = uploadGraph(gpu, g, "contract.fine");
      const labels = gpu.upload(randomLabels(g.n, N, 50 + i), "contract.labels", GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
      const onDevice = await contractGraphGpu(gpu, fine, labels, N, "contract.test");
      const onHost = await contractGraphHost(gpu, fine, labels, N, "contract.test");
      const [a, b] = [await readGraph(gpu, onDevice), await readGraph(gpu, onHost)];
      expect(onHost.nArcs).toBe(onDevice.nArcs);
      for (const key of ["indptr", "indices", "wq", "weights", "kq"] as const) expect(bytesEqual(a[key], b[key]), key).toBe(true);
      for (const d of [onDevice, onHost, fine]) destroyGraph(d);
      labels.destroy();
    }
  });

  it("says a graph does not fit a small binding limit instead of crashing", async () => {
    const g = randomGraph({ n: 200, degree: 5 }, 17);
    const small = await acquireGpu({ forceLimits: { maxStorageBufferBindingSize: 16 * 1024 } });
    try {
      const fine = uploadGraph(small, g, "contract.small");
      // 24 bytes of hash table per arc exceed 16 KiB; the inputs themselves are under it.
      expect(8 * fine.nArcs).toBeLessThanOrEqual(16 * 1024);
      expect(fitsContractGpu(small, fine)).toBe(false);
      expect(fitsContractGpu(gpu, fine)).toBe(true);
      const labels = small.upload(randomLabels(g.n, 10, 18));
      await expect(contractGraphGpu(small, fine, labels, 10, "contract.small")).rejects.toThrow(/binding limit/);
      labels.destroy();
      destroyGraph(fine);
    } finally {
      small.destroy();
    }
  });
});
