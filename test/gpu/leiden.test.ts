/**
 * leidenGpu (every level on the WebGPU adapter, lavapipe here: local moving, refinement,
 * aggregation) against leidenCpu and the scanpy-like reference Leiden: small graphs with known
 * answers, then pbmc3k and kang2018_ctrl_5donors reference connectivities (modularity vs
 * leidenCpu's and the reference partition's, ARI to leidenCpu's partition, identical labels run
 * to run, every community connected — what the refinement guarantees and Louvain does not).
 * Device buffers are poisoned so unwritten outputs show.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import type { Csr } from "../../src/core/csr.js";
import { GpuError, type Gpu } from "../../src/gpu/device.js";
import { adjustedRandIndex, modularity } from "../../src/metrics/index.js";
import { leidenCpu, leidenGpu } from "../../src/ops/leiden.js";
import { graphFromCsr } from "../../src/ops/communityCommon.js";
import { DeviceLevels, SMALL_LEVEL } from "../../src/ops/communityGpu.js";
import { referenceGraph } from "../helpers/pipelineRef.js";
import { readTsv, referenceDir } from "../helpers/reference.js";
import { clique, median, symmetric } from "../helpers/graphs.js";
import { rng, testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

/** Communities that are not connected inside themselves (BFS over arcs within the community). */
function disconnectedCommunities(g: Csr, labels: ArrayLike<number>): number {
  const n = g.nRows;
  const seen = new Uint8Array(n);
  const started = new Set<number>();
  let bad = 0;
  for (let s = 0; s < n; s++) {
    if (seen[s]) continue;
    const c = labels[s];
    if (started.has(c)) bad++;
    started.add(c);
    const stack = [s];
    seen[s] = 1;
    while (stack.length) {
      const v = stack.pop()!;
      for (let k = g.indptr[v]; k < g.indptr[v + 1]; k++) {
        const u = g.indices[k];
        if (!seen[u] && labels[u] === c && g.data[k] !== 0) {
          seen[u] = 1;
          stack.push(u);
        }
      }
    }
  }
  return bad;
}

describe("leidenGpu on graphs with known answers", () => {
  it("two 5-cliques joined by one edge -> the two cliques, any seed", async () => {
    const g = symmetric(10, [...clique([0, 1, 2, 3, 4]), ...clique([5, 6, 7, 8, 9]), [4, 5]]);
    for (const seed of [0, 1, 2]) {
      expect(Array.from(await leidenGpu(gpu, g, { resolution: 1, seed }))).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    }
  });
  it("ring of 8 triangles -> the triangles; self loops tolerated", async () => {
    const edges: [number, number, number?][] = [];
    for (let t = 0; t < 8; t++) {
      edges.push(...clique([3 * t, 3 * t + 1, 3 * t + 2]), [3 * t + 2, (3 * t + 3) % 24, 0.2]);
    }
    edges.push([0, 0, 2], [7, 7, 0.5]);
    const labels = await leidenGpu(gpu, symmetric(24, edges), { resolution: 1, seed: 3 });
    for (let t = 0; t < 8; t++) {
      expect(labels[3 * t + 1]).toBe(labels[3 * t]);
      expect(labels[3 * t + 2]).toBe(labels[3 * t]);
    }
    expect(new Set(labels).size).toBe(8);
  });
  it("planted partition (6 blocks of 40, p_in 0.3, p_out 0.01, random weights) is recovered exactly", async () => {
    const r = rng(42);
    const block = (v: number) => Math.floor(v / 40);
    const edges: [number, number, number][] = [];
    for (let a = 0; a < 240; a++) {
      for (let b = a + 1; b < 240; b++) if (r() < (block(a) === block(b) ? 0.3 : 0.01)) edges.push([a, b, 0.2 + 0.8 * r()]);
    }
    const planted = Array.from({ length: 240 }, (_, v) => block(v));
    for (const seed of [0, 5]) {
      expect(adjustedRandIndex(await leidenGpu(gpu, symmetric(240, edges), { resolution: 1, seed }), planted)).toBe(1);
    }
  });
  it("a level too large for the device contraction is contracted on the host: the same partition", async () => {
    const r = rng(7);
    const block = (v: number) => Math.floor(v / 40);
    const edges: [number, number, number][] = [];
    for (let a = 0; a < 240; a++) {
      for (let b = a + 1; b < 240; b++) if (r() < (block(a) === block(b) ? 0.3 : 0.02)) edges.push([a, b, 0.2 + 0.8 * r()]);
    }
    const g = symmetric(240, edges);
    const nArcs = g.indptr[240];
    // The first level's arcs fit (8 bytes each), its contraction's hash tables (24 bytes each) do not.
    const limit = 16 * nArcs;
    const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: limit }, poisonBuffers: true });
    try {
      for (const seed of [0, 1]) {
        expect(Array.from(await leidenGpu(small, g, { resolution: 1, seed }))).toEqual(Array.from(await leidenGpu(gpu, g, { resolution: 1, seed })));
      }
    } finally {
      small.destroy();
    }
  });
  it("isolated nodes stay singletons, numbered after larger communities", async () => {
    const g = symmetric(8, [...clique([1, 2, 3]), ...clique([5, 6, 7])]);
    expect(Array.from(await leidenGpu(gpu, g, { resolution: 1, seed: 0 }))).toEqual([2, 0, 0, 0, 3, 1, 1, 1]);
  });
  it("a graph over the device's binding limit is refused with a GpuError (the pipeline then runs leidenCpu)", async () => {
    const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: 1024 } });
    try {
      const edges = clique(Array.from({ length: 20 }, (_, i) => i));
      await expect(leidenGpu(small, symmetric(20, edges), { resolution: 1, seed: 0 })).rejects.toThrow(GpuError);
    } finally {
      small.destroy();
    }
  });
  it("the connectivity check sees a disconnected community", () => {
    const g = symmetric(6, [...clique([0, 1, 2]), ...clique([3, 4, 5])]);
    expect(disconnectedCommunities(g, [0, 0, 0, 0, 0, 0])).toBe(1);
    expect(disconnectedCommunities(g, [0, 0, 0, 1, 1, 1])).toBe(0);
  });
  it("empty and edgeless graphs", async () => {
    expect((await leidenGpu(gpu, symmetric(0, []), { resolution: 1, seed: 0 })).length).toBe(0);
    expect(Array.from(await leidenGpu(gpu, symmetric(4, []), { resolution: 1, seed: 0 }))).toEqual([0, 1, 2, 3]);
  });
});

describe("the level loop's single-workgroup batches (for small levels)", () => {
  it("give the same partitions, bit for bit, as one dispatch per colour phase (Leiden and Louvain passes)", async () => {
    const g = graphFromCsr(referenceGraph("pbmc3k"), true);
    let tw = 0;
    for (let v = 0; v < g.n; v++) tw += g.nodeWeight[v];
    const start = Int32Array.from({ length: g.n }, (_, i) => i);
    for (const refine of [true, false]) {
      // Every level single-workgroup (n = 2,638 is above the default SMALL_LEVEL) vs none.
      expect(g.n).toBeGreaterThan(SMALL_LEVEL);
      const [small, perPhase] = await Promise.all([g.n, 0].map((lim) => DeviceLevels.create(gpu, g, 1, tw, 3, "leiden.test", lim)));
      try {
        const a = await small.optimise(start, refine);
        const b = await perPhase.optimise(start, refine);
        expect(Array.from(a)).toEqual(Array.from(b));
        expect(new Set(a).size).toBeGreaterThan(3); // it did partition
        // A second pass from the first's result, as leidenGpu / louvainGpu iterate.
        expect(Array.from(await small.optimise(a, refine))).toEqual(Array.from(await perPhase.optimise(b, refine)));
      } finally {
        small.destroy();
        perPhase.destroy();
      }
    }
  });
});

describe("leidenGpu vs leidenCpu and scanpy-like leidenalg on reference connectivities", () => {
  for (const [ds, ariBar] of [
    ["pbmc3k", 0.65],
    ["kang2018_ctrl_5donors", 0.9],
  ] as const) {
    it(`${ds}: Q within 1% of leidenCpu's and >= 99.5% of the reference's for each seed, median ARI to leidenCpu >= ${ariBar}, same labels twice`, async () => {
      const g = referenceGraph(ds);
      const ref = readTsv(join(referenceDir(ds, "scanpy_like"), "clusters.tsv.gz")).num("leiden");
      expect(ref.length).toBe(g.nRows);
      let t0 = performance.now();
      const cpu = leidenCpu(g, { resolution: 1, seed: 0 });
      const cpuMs = performance.now() - t0;
      const qCpu = modularity(g, cpu, 1);
      const qRef = modularity(g, ref, 1);
      const qs: number[] = [];
      const aris: number[] = [];
      const ms: number[] = [];
      let first: Int32Array | undefined;
      for (const seed of [0, 1, 2]) {
        t0 = performance.now();
        const labels = await leidenGpu(gpu, g, { resolution: 1, seed });
        ms.push(performance.now() - t0);
        qs.push(modularity(g, labels, 1));
        aris.push(adjustedRandIndex(labels, cpu));
        first ??= labels;
      }
      const again = await leidenGpu(gpu, g, { resolution: 1, seed: 0 });
      console.log(
        `${ds} leiden: Q ref ${qRef.toFixed(5)} cpu(seed 0) ${qCpu.toFixed(5)} gpu(seeds 0-2) ${qs.map((q) => q.toFixed(5)).join(" ")}; ` +
          `ARI gpu-cpu ${aris.map((a) => a.toFixed(3)).join(" ")}; gpu(seed 0)-ref ${adjustedRandIndex(first!, ref).toFixed(3)} cpu-ref ${adjustedRandIndex(cpu, ref).toFixed(3)}; ` +
          `clusters ref ${new Set(ref).size} cpu ${new Set(cpu).size} gpu ${new Set(first).size}; ms cpu ${cpuMs.toFixed(0)} gpu ${ms.map((x) => x.toFixed(0)).join(" ")}`,
      );
      expect(Array.from(again)).toEqual(Array.from(first!));
      expect(disconnectedCommunities(g, first!)).toBe(0);
      for (const q of qs) {
        expect(Math.abs(q - qCpu)).toBeLessThanOrEqual(0.01 * qCpu);
        expect(q).toBeGreaterThanOrEqual(0.995 * qRef);
      }
      // leidenCpu's own seeds agree with its seed 0 at ARI 0.89-0.99 (kang) and 0.78-0.90 (pbmc3k),
      // so one GPU seed can land below the bar by chance; the median over seeds is the stable measure.
      expect(median(aris)).toBeGreaterThanOrEqual(ariBar);
    });
  }
});
