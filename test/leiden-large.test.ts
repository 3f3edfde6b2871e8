import { describe, expect, it } from "vitest";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { adjustedRandIndex, modularity } from "../src/metrics/index.js";
import { leidenCpu } from "../src/ops/leiden.js";

/** Noisy planted partition: `groups` groups of `size`, each node 8 random partners inside, 5 outside, random weights. */
function planted(groups: number, size: number, seed: number): Csr {
  const n = groups * size;
  const rng = new Rng(seed);
  const w = new Map<number, number>();
  const add = (a: number, b: number, x: number) => {
    if (a === b) return;
    w.set(a * n + b, x);
    w.set(b * n + a, x);
  };
  for (let v = 0; v < n; v++) {
    const g = Math.floor(v / size);
    for (let t = 0; t < 8; t++) add(v, g * size + Math.floor(rng.nextFloat() * size), 0.2 + rng.nextFloat());
    for (let t = 0; t < 5; t++) add(v, Math.floor(rng.nextFloat() * n), 0.2 + rng.nextFloat());
  }
  const keys = Array.from(w.keys()).sort((a, b) => a - b);
  const indptr = new Float64Array(n + 1);
  for (const k of keys) indptr[Math.floor(k / n) + 1]++;
  for (let r = 0; r < n; r++) indptr[r + 1] += indptr[r];
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(keys, (k) => k % n), data: Float32Array.from(keys, (k) => w.get(k)!) };
}

describe("Leiden: large-graph stopping rule (threshold lowered by option)", () => {
  it("stops on a gain below 1e-4 of the total weight: modularity within 1e-3 of running until no gain", () => {
    const g = planted(40, 100, 7);
    for (const seed of [0, 1]) {
      const full = leidenCpu(g, { resolution: 1, seed });
      const early = leidenCpu(g, { resolution: 1, seed, largeGraph: 1000 });
      const qFull = modularity(g, full, 1);
      const qEarly = modularity(g, early, 1);
      console.log(`seed ${seed}: Q full ${qFull.toFixed(5)}, early stop ${qEarly.toFixed(5)}, ARI ${adjustedRandIndex(full, early).toFixed(3)}`);
      expect(qEarly).toBeGreaterThan(qFull - 1e-3);
      expect(adjustedRandIndex(full, early)).toBeGreaterThan(0.9);
    }
  });

  it("below the threshold nothing changes", () => {
    const g = planted(10, 50, 3);
    const a = leidenCpu(g, { resolution: 1, seed: 0 });
    const b = leidenCpu(g, { resolution: 1, seed: 0, largeGraph: 501 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});
