/**
 * leidenGpu (first-level local moving on the WebGPU adapter, lavapipe here) against leidenCpu and
 * the scanpy-like reference Leiden: small graphs with known answers, then pbmc3k and
 * kang2018_ctrl_5donors reference connectivities (modularity vs leidenCpu's and the reference
 * partition's, ARI to leidenCpu's partition, identical labels run to run). Device buffers are
 * poisoned so unwritten outputs show.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { adjustedRandIndex, modularity } from "../../src/metrics/index.js";
import { leidenCpu, leidenGpu } from "../../src/ops/leiden.js";
import { referenceGraph } from "../helpers/pipelineRef.js";
import { readTsv, referenceDir } from "../helpers/reference.js";
import { testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

/** Undirected edge list (a, b, w = 1) -> symmetric CSR, both directions, columns sorted. */
function symmetric(n: number, edges: [number, number, number?][]): Csr {
  const rows: [number, number][][] = Array.from({ length: n }, () => []);
  for (const [a, b, w = 1] of edges) {
    rows[a].push([b, w]);
    if (a !== b) rows[b].push([a, w]);
  }
  const indptr = new Float64Array(n + 1);
  const indices: number[] = [];
  const data: number[] = [];
  rows.forEach((r, i) => {
    r.sort((x, y) => x[0] - y[0]);
    for (const [j, w] of r) {
      indices.push(j);
      data.push(w);
    }
    indptr[i + 1] = indices.length;
  });
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(indices), data: Float32Array.from(data) };
}

function clique(nodes: number[]): [number, number][] {
  const e: [number, number][] = [];
  for (let a = 0; a < nodes.length; a++) for (let b = a + 1; b < nodes.length; b++) e.push([nodes[a], nodes[b]]);
  return e;
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
  it("isolated nodes stay singletons, numbered after larger communities", async () => {
    const g = symmetric(8, [...clique([1, 2, 3]), ...clique([5, 6, 7])]);
    expect(Array.from(await leidenGpu(gpu, g, { resolution: 1, seed: 0 }))).toEqual([2, 0, 0, 0, 3, 1, 1, 1]);
  });
  it("empty and edgeless graphs", async () => {
    expect((await leidenGpu(gpu, symmetric(0, []), { resolution: 1, seed: 0 })).length).toBe(0);
    expect(Array.from(await leidenGpu(gpu, symmetric(4, []), { resolution: 1, seed: 0 }))).toEqual([0, 1, 2, 3]);
  });
});

describe("leidenGpu vs leidenCpu and scanpy-like leidenalg on reference connectivities", () => {
  for (const [ds, ariBar] of [
    ["pbmc3k", 0.65],
    ["kang2018_ctrl_5donors", 0.9],
  ] as const) {
    it(`${ds}: Q within 1% of leidenCpu's and >= 99.5% of the reference's, ARI to leidenCpu >= ${ariBar}, same labels twice`, async () => {
      const g = referenceGraph(ds);
      const ref = readTsv(join(referenceDir(ds, "scanpy_like"), "clusters.tsv.gz")).num("leiden");
      expect(ref.length).toBe(g.nRows);
      const opts = { resolution: 1, seed: 0 };
      let t0 = performance.now();
      const cpu = leidenCpu(g, opts);
      const cpuMs = performance.now() - t0;
      t0 = performance.now();
      const a = await leidenGpu(gpu, g, opts);
      const gpuMs = performance.now() - t0;
      const b = await leidenGpu(gpu, g, opts);
      const qCpu = modularity(g, cpu, 1);
      const qGpu = modularity(g, a, 1);
      const qRef = modularity(g, ref, 1);
      const ari = adjustedRandIndex(a, cpu);
      console.log(
        `${ds} leiden: Q gpu ${qGpu.toFixed(5)} cpu ${qCpu.toFixed(5)} ref ${qRef.toFixed(5)}; ` +
          `clusters gpu ${new Set(a).size} cpu ${new Set(cpu).size} ref ${new Set(ref).size}; ` +
          `ARI gpu-cpu ${ari.toFixed(3)} gpu-ref ${adjustedRandIndex(a, ref).toFixed(3)} cpu-ref ${adjustedRandIndex(cpu, ref).toFixed(3)}; ` +
          `ms cpu ${cpuMs.toFixed(0)} gpu ${gpuMs.toFixed(0)}`,
      );
      expect(Array.from(b)).toEqual(Array.from(a));
      expect(Math.abs(qGpu - qCpu)).toBeLessThanOrEqual(0.01 * qCpu);
      expect(qGpu).toBeGreaterThanOrEqual(0.995 * qRef);
      expect(ari).toBeGreaterThanOrEqual(ariBar);
    });
  }
});
