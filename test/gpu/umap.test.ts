/**
 * umapLayoutGpu vs umapLayoutCpu on the real WebGPU adapter (lavapipe here). Layouts are compared
 * by trustworthiness (the numerical contract: never raw coordinates, since the GPU's Jacobi-style
 * epochs and float32 take a different SGD path); the kernel itself is checked step for step
 * against a float64 model of the update its header documents, which draws negative samples with
 * the CPU twin's hash. Device buffers are poisoned (NaN bytes) so unwritten outputs show. Under
 * forced small binding limits the layout is split into vertex ranges and must keep its bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import { Rng } from "../../src/core/random.js";
import { GpuError, type Gpu } from "../../src/gpu/device.js";
import { trustworthiness } from "../../src/metrics/index.js";
import { connectedComponents } from "../../src/ops/spectral.js";
import {
  epochAlphas,
  negativeBase,
  negativeDraw,
  umapLayoutCpu,
  umapLayoutGpu,
  umapSetup,
  type UmapOptions,
} from "../../src/ops/umap.js";
import { referenceGraph, referencePcs } from "../helpers/pipelineRef.js";
import { bytesEqual, testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

/**
 * Components of random 2-D points (component c shifted by 10·c), each a symmetric kNN graph
 * (union) with Gaussian weights scaled by the distance to the k-th neighbour; returns the graph
 * and the points.
 */
function componentsGraph(sizes: number[], k: number, seed: number): { graph: Csr; points: Float64Array } {
  const rng = new Rng(seed);
  const n = sizes.reduce((s, v) => s + v, 0);
  const points = new Float64Array(2 * n);
  const edges = new Map<number, number>();
  let offset = 0;
  sizes.forEach((size, c) => {
    for (let p = offset; p < offset + size; p++) {
      points[2 * p] = rng.nextFloat() + 10 * c;
      points[2 * p + 1] = rng.nextFloat();
    }
    for (let p = offset; p < offset + size; p++) {
      const near: [number, number][] = [];
      for (let q = offset; q < offset + size; q++) {
        if (q !== p) near.push([(points[2 * p] - points[2 * q]) ** 2 + (points[2 * p + 1] - points[2 * q + 1]) ** 2, q]);
      }
      near.sort((u, v) => u[0] - v[0] || u[1] - v[1]);
      const kept = near.slice(0, k);
      const scale = kept[kept.length - 1][0];
      for (const [d2, q] of kept) {
        const w = Math.max(Math.exp(-d2 / scale), edges.get(p * n + q) ?? 0);
        edges.set(p * n + q, w);
        edges.set(q * n + p, w);
      }
    }
    offset += size;
  });
  const keys = [...edges.keys()].sort((u, v) => u - v);
  const indptr = new Float64Array(n + 1);
  for (const key of keys) indptr[Math.floor(key / n) + 1]++;
  for (let r = 0; r < n; r++) indptr[r + 1] += indptr[r];
  const graph: Csr = {
    nRows: n,
    nCols: n,
    indptr,
    indices: Uint32Array.from(keys, (key) => key % n),
    data: Float32Array.from(keys, (key) => edges.get(key)!),
  };
  return { graph, points };
}

/** `graph` plus a last vertex joined both ways to every other vertex with weight w. */
function withHub(graph: Csr, w: number): Csr {
  const n = graph.nRows;
  const indptr = new Float64Array(n + 2);
  const indices: number[] = [];
  const data: number[] = [];
  for (let r = 0; r < n; r++) {
    for (let e = graph.indptr[r]; e < graph.indptr[r + 1]; e++) {
      indices.push(graph.indices[e]);
      data.push(graph.data[e]);
    }
    indices.push(n);
    data.push(w);
    indptr[r + 1] = indices.length;
  }
  for (let k = 0; k < n; k++) {
    indices.push(k);
    data.push(w);
  }
  indptr[n + 1] = indices.length;
  return { nRows: n + 1, nCols: n + 1, indptr, indices: Uint32Array.from(indices), data: Float32Array.from(data) };
}

/**
 * The update the kernel header documents, in float64 and plain JS: per epoch every vertex, from
 * the epoch's starting layout, takes the steps of its sampled in-edges from earlier rows, its own
 * sampled edges each followed by that edge's negative samples (the CPU twin's hash), then its
 * in-edges from later rows. The schedule is kept in float32 (Math.fround) as on the device.
 * keyXor alters the negative-sample hash key (to show the comparison would notice).
 */
function jacobiModel(graph: Csr, opts: UmapOptions, keyXor = 0): Float64Array {
  const s = umapSetup(graph, opts);
  s.seedKey ^= keyXor;
  const { n, pruned, a, b } = s;
  const f = Math.fround;
  const nEdges = pruned.indptr[n];
  const perSample = Float64Array.from(s.epochsPerSample, f);
  const perNegative = Float64Array.from(s.epochsPerSample, (v) => f(v / s.negativeRate));
  let next = Float64Array.from(perSample);
  let nextNeg = Float64Array.from(perNegative);
  const inEdges: number[][] = Array.from({ length: n }, () => []);
  const head = new Uint32Array(nEdges);
  for (let r = 0; r < n; r++) {
    for (let e = pruned.indptr[r]; e < pruned.indptr[r + 1]; e++) {
      head[e] = r;
      inEdges[pruned.indices[e]].push(e);
    }
  }
  const clip = (v: number) => Math.min(4, Math.max(-4, v));
  const alphas = epochAlphas(s);
  let x = Float64Array.from(s.emb);
  for (let epoch = 0; epoch < s.nEpochs; epoch++) {
    const alpha = alphas[epoch];
    const out = new Float64Array(2 * n);
    const next2 = Float64Array.from(next);
    const nextNeg2 = Float64Array.from(nextNeg);
    for (let v = 0; v < n; v++) {
      let px = x[2 * v];
      let py = x[2 * v + 1];
      const attract = (k: number) => {
        const dx = px - x[2 * k];
        const dy = py - x[2 * k + 1];
        const d2 = dx * dx + dy * dy;
        if (d2 <= 0) return;
        const pb = Math.pow(d2, b);
        const coeff = (-2 * a * b * (pb / d2)) / (a * pb + 1);
        px += clip(coeff * dx) * alpha;
        py += clip(coeff * dy) * alpha;
      };
      const inStep = (e: number) => {
        if (next[e] <= epoch && head[e] !== v) attract(head[e]);
      };
      const rowStart = pruned.indptr[v];
      const ins = inEdges[v];
      let q = 0;
      for (; q < ins.length && ins[q] < rowStart; q++) inStep(ins[q]);
      for (let e = rowStart; e < pruned.indptr[v + 1]; e++) {
        if (next[e] > epoch) continue;
        if (pruned.indices[e] !== v) attract(pruned.indices[e]);
        next2[e] = f(next[e] + perSample[e]);
        const nNeg = Math.floor(f(f(epoch - nextNeg[e]) / perNegative[e]));
        if (nNeg <= 0) continue;
        const base = negativeBase(s.seedKey, e, epoch);
        for (let p = 0; p < nNeg; p++) {
          const o = Math.floor(((negativeDraw(base, p) >>> 0) * n) / 4294967296);
          if (o === v) continue;
          const dx = px - x[2 * o];
          const dy = py - x[2 * o + 1];
          const d2 = dx * dx + dy * dy;
          if (d2 > 0) {
            const coeff = (2 * b) / ((0.001 + d2) * (a * Math.pow(d2, b) + 1));
            px += clip(coeff * dx) * alpha;
            py += clip(coeff * dy) * alpha;
          } else {
            px += 4 * alpha;
            py += 4 * alpha;
          }
        }
        nextNeg2[e] = f(nextNeg[e] + f(nNeg * perNegative[e]));
      }
      for (; q < ins.length; q++) inStep(ins[q]);
      out[2 * v] = px;
      out[2 * v + 1] = py;
    }
    x = out;
    next = next2;
    nextNeg = nextNeg2;
  }
  return x;
}

const options: UmapOptions = { minDist: 0.5, spread: 1, seed: 0 };

describe("umapLayoutGpu", () => {
  it("pbmc3k reference graph: trustworthiness within 0.01 of the CPU twin's; same seed, same bytes", async () => {
    const pca = referencePcs("pbmc3k");
    const g = referenceGraph("pbmc3k");
    let t = performance.now();
    const cpu = umapLayoutCpu(g, options);
    const cpuMs = performance.now() - t;
    t = performance.now();
    const onGpu = await umapLayoutGpu(gpu, g, options);
    const gpuMs = performance.now() - t;
    expect(onGpu.length).toBe(2 * pca.n);
    expect(onGpu.every(Number.isFinite)).toBe(true);
    const twCpu = trustworthiness(pca.data, 50, cpu, 2, pca.n, 15);
    const twGpu = trustworthiness(pca.data, 50, onGpu, 2, pca.n, 15);
    console.log(
      `pbmc3k UMAP 500 epochs (${pca.n} cells): CPU ${cpuMs.toFixed(0)} ms, GPU (${gpu.info.description}) ${gpuMs.toFixed(0)} ms; ` +
        `trustworthiness@15 CPU ${twCpu.toFixed(4)}, GPU ${twGpu.toFixed(4)}`,
    );
    expect(Math.abs(twGpu - twCpu)).toBeLessThan(0.01);

    // Determinism on shorter runs: same seed => same bytes; another seed => another layout.
    const short = { ...options, nEpochs: 20 };
    const r0 = await umapLayoutGpu(gpu, g, short);
    const r1 = await umapLayoutGpu(gpu, g, short);
    const other = await umapLayoutGpu(gpu, g, { ...short, seed: 1 });
    expect(bytesEqual(r0, r1)).toBe(true);
    expect(bytesEqual(r0, other)).toBe(false);
    // Split into vertex ranges under a 128 KiB binding limit: the same bytes.
    const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: 128 * 1024 }, poisonBuffers: true });
    try {
      const st = { chunks: 0 };
      expect(bytesEqual(await umapLayoutGpu(small, g, short, st), r0)).toBe(true);
      expect(st.chunks).toBeGreaterThan(2);
    } finally {
      small.destroy();
    }
  });

  it("follows the documented update step for step (float64 model, the CPU twin's negative samples)", async () => {
    // SGD at umap's learning rate amplifies float32 vs float64 rounding about twofold per epoch,
    // so the comparison uses a smaller rate and few epochs (differences then stay ~1e-4; at the
    // default rate they reach 1e-2 by epoch 10 with no discrete disagreement behind them).
    const { graph } = componentsGraph([150, 90, 2], 6, 7);
    const maxDiff = (p: ArrayLike<number>, q: ArrayLike<number>) => {
      let worst = 0;
      for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i] - q[i]));
      return worst;
    };
    for (const opts of [
      { ...options, nEpochs: 30, seed: 5, learningRate: 0.2 },
      { ...options, nEpochs: 6, seed: 6, learningRate: 0.2, init: "random" as const, negativeSampleRate: 3 },
    ]) {
      const model = jacobiModel(graph, opts);
      const worst = maxDiff(await umapLayoutGpu(gpu, graph, opts), model);
      console.log(`GPU vs float64 model after ${opts.nEpochs} epochs: max |Δ| ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(2e-3);
      // Other negative samples (another hash key) move points by far more than that.
      expect(maxDiff(jacobiModel(graph, opts, 1), model)).toBeGreaterThan(0.05);
    }
  });

  it("disconnected graph: finite, components kept apart, trustworthiness near the CPU twin's, reruns identical", async () => {
    const { graph, points } = componentsGraph([120, 80, 2], 6, 3);
    const n = graph.nRows;
    const { count, labels } = connectedComponents(graph);
    expect(count).toBe(3);
    const opts = { ...options, nEpochs: 200, seed: 3 };
    const onGpu = await umapLayoutGpu(gpu, graph, opts);
    const cpu = umapLayoutCpu(graph, opts);
    expect(onGpu.every(Number.isFinite)).toBe(true);
    // Each point's nearest point in the layout belongs to its own component.
    for (let i = 0; i < n; i++) {
      let best = -1;
      let bestD = Infinity;
      for (let j = 0; j < n; j++) {
        const d = (onGpu[2 * i] - onGpu[2 * j]) ** 2 + (onGpu[2 * i + 1] - onGpu[2 * j + 1]) ** 2;
        if (j !== i && d < bestD) [best, bestD] = [j, d];
      }
      expect(labels[best]).toBe(labels[i]);
    }
    const twCpu = trustworthiness(points, 2, cpu, 2, n, 10);
    const twGpu = trustworthiness(points, 2, onGpu, 2, n, 10);
    console.log(`disconnected graph trustworthiness@10: CPU ${twCpu.toFixed(4)}, GPU ${twGpu.toFixed(4)}`);
    expect(Math.abs(twGpu - twCpu)).toBeLessThan(0.02);

    // A second device gives the same bytes.
    const fresh = await testGpu();
    try {
      expect(bytesEqual(await umapLayoutGpu(fresh, graph, opts), onGpu)).toBe(true);
    } finally {
      fresh.destroy();
    }
  });

  it("chunked under small binding limits: same bytes as one chunk, a hub alone in its chunk", async () => {
    // Chunks are vertex ranges (a vertex's edges are never split: the kernel carries its position
    // through all of them), so the boundaries that matter are between vertices of very different
    // degree: a hub joined to every other vertex fills a chunk by itself at limit 8n.
    const graph = withHub(componentsGraph([150, 90, 2], 6, 7).graph, 0.3);
    const n = graph.nRows;
    const opts = { ...options, nEpochs: 40, seed: 11 };
    const one = { chunks: 0 };
    const whole = await umapLayoutGpu(gpu, graph, opts, one);
    expect(one.chunks).toBe(1);
    expect(whole.every(Number.isFinite)).toBe(true);
    // The 8-byte-an-edge arrays are over 4 times either limit; at limit 8n the hub's 242 edges
    // (1936 bytes) leave no room for another vertex's.
    expect(graph.indptr[n] * 8).toBeGreaterThan(4 * 8 * n);
    for (const limit of [8 * n, 2048]) {
      const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: limit }, poisonBuffers: true });
      try {
        const st = { chunks: 0 };
        const chunked = await umapLayoutGpu(small, graph, opts, st);
        console.log(`UMAP ${n} vertices, ${graph.indptr[n]} edges, binding limit ${limit} B: ${st.chunks} chunks`);
        expect(st.chunks).toBeGreaterThan(2);
        expect(bytesEqual(chunked, whole)).toBe(true);
        expect(bytesEqual(await umapLayoutGpu(small, graph, opts), whole)).toBe(true);
      } finally {
        small.destroy();
      }
    }
    // The comparison notices a change: another seed under the same split gives other bytes.
    expect(bytesEqual(await umapLayoutGpu(gpu, graph, { ...opts, seed: 12 }), whole)).toBe(false);
  });

  it("no cells: empty layout; positions over the binding limit: GpuError", async () => {
    const empty: Csr = { nRows: 0, nCols: 0, indptr: new Float64Array(1), indices: new Uint32Array(0), data: new Float32Array(0) };
    expect((await umapLayoutGpu(gpu, empty, options)).length).toBe(0);
    // 60 vertices: 480 bytes of positions, which must fit one binding.
    const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: 472 } });
    try {
      const { graph } = componentsGraph([60], 6, 1);
      await expect(umapLayoutGpu(small, graph, { ...options, nEpochs: 5 })).rejects.toThrow(GpuError);
    } finally {
      small.destroy();
    }
  });
});
