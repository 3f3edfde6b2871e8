/**
 * The ceiling kernels (src/gpu/ceiling.ts, kernels/ceiling.wgsl) on the real WebGPU adapter:
 * both matmul kernels against a float64 CPU product on fresh random inputs over shapes that
 * need padding (1×1, odd sizes, k not a multiple of 4 or 16, an empty k), outputs poisoned;
 * both copy paths byte-exact; and a ceiling measurement that returns positive, finite rates.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gpu } from "../../src/gpu/device.js";
import { copyRoundTripGpu, matmulGpu, measureCeiling, type MatmulKernel } from "../../src/gpu/ceiling.js";
import { bytesEqual, rng, testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: rows * cols }, () => 2 * r() - 1);
}

/** Float64 product and, per entry, Σ_k |a_ik·b_kj| (the scale float32 rounding error grows with). */
function matmulCpu(a: Float32Array, b: Float32Array, m: number, k: number, n: number): { c: Float64Array; scale: Float64Array } {
  const c = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      const x = a[i * k + t];
      for (let j = 0; j < n; j++) {
        c[i * n + j] += x * b[t * n + j];
        scale[i * n + j] += Math.abs(x * b[t * n + j]);
      }
    }
  }
  return { c, scale };
}

const shapes: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [64, 16, 64],
  [65, 17, 63],
  [130, 250, 70],
  [200, 1, 129],
  [5, 0, 9],
];

describe.each<MatmulKernel>(["register", "tiled"])("matmulGpu (%s)", (kernel) => {
  it.each(shapes)("matches a float64 CPU product: %i×%i · %i×…", async (m, k, n) => {
    const a = randomMatrix(m, k, 100 + m);
    const b = randomMatrix(k, n, 200 + n);
    const { c, scale } = matmulCpu(a, b, m, k, n);
    const g = await matmulGpu(gpu, a, b, m, k, n, kernel);
    expect(g.length).toBe(m * n);
    let worst = 0;
    for (let i = 0; i < g.length; i++) {
      // float32 accumulation: error ≤ ~k·2^−24·Σ|ab|; allow 4 × that plus one rounding
      const err = Math.abs(g[i] - c[i]) / ((4 * Math.max(k, 1) + 1) * 2 ** -24 * Math.max(scale[i], 1e-30));
      if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it("gives identical bytes run to run", async () => {
    const a = randomMatrix(96, 80, 7);
    const b = randomMatrix(80, 100, 8);
    const x = await matmulGpu(gpu, a, b, 96, 80, 100, kernel);
    const y = await matmulGpu(gpu, a, b, 96, 80, 100, kernel);
    expect(bytesEqual(x, y)).toBe(true);
  });
});

describe("copy", () => {
  it.each(["copy", "shader"] as const)("round-trips bytes exactly (%s), odd lengths included", async (via) => {
    const r = rng(9);
    for (const len of [1, 15, 16, 1000, 3 * 2 ** 20 + 5]) {
      const data = Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
      const back = await copyRoundTripGpu(gpu, data, via);
      expect(bytesEqual(back, data)).toBe(true);
    }
  });
});

describe("measureCeiling", () => {
  it("returns positive finite rates for every method and names the adapter", async () => {
    const c = await measureCeiling(gpu, { runs: 3, targetMs: 20, maxCopyBytes: 16 * 2 ** 20, maxMatmulN: 512 });
    console.log(
      `ceiling on ${c.adapter.description}: ` +
        Object.entries(c.methods)
          .map(([k, v]) => `${k} ${v.median.toFixed(2)} (size ${v.size}, ×${v.reps})`)
          .join("; "),
    );
    expect(c.adapter.description.length + c.adapter.vendor.length).toBeGreaterThan(0);
    for (const m of Object.values(c.methods)) {
      expect(m.runs.length).toBe(3);
      for (const v of m.runs) expect(Number.isFinite(v) && v > 0).toBe(true);
    }
    expect(c.copyGBps).toBe(Math.max(c.methods.copyBufferToBuffer.median, c.methods["shader copy_vec4"].median));
    expect(c.matmulGflops).toBe(Math.max(c.methods["matmul register"].median, c.methods["matmul tiled"].median));
  });
});
