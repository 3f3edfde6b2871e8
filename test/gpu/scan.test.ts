/**
 * exclusiveScanU32 (kernels/scan.wgsl) against a host prefix sum: sizes around the 256-thread and
 * 1024-element block edges and with two and three recursion levels, n = 0, totals that wrap 2^32,
 * poisoned buffers (so an unwritten element shows), and identical bytes run to run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gpu } from "../../src/gpu/device.js";
import { exclusiveScanU32, exclusiveScanU32Steps } from "../../src/gpu/scan.js";
import { bytesEqual, rng, testGpu } from "./util.js";

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
});
afterAll(() => gpu?.destroy());

function randomU32(n: number, seed: number, max: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * max));
}

/** out[i] = Σ_{j<i} x[j] mod 2^32, n+1 values. */
function hostScan(x: Uint32Array): Uint32Array {
  const out = new Uint32Array(x.length + 1);
  for (let i = 0; i < x.length; i++) out[i + 1] = (out[i] + x[i]) >>> 0;
  return out;
}

async function deviceScan(x: Uint32Array): Promise<{ out: Uint32Array; total: number }> {
  const input = gpu.upload(x, "scan.input");
  try {
    const { out, total } = await exclusiveScanU32(gpu, input, x.length, "scan.test");
    try {
      expect(out.size).toBeGreaterThanOrEqual(4 * (x.length + 1));
      return { out: new Uint32Array(await gpu.readback(out, 4 * (x.length + 1))), total };
    } finally {
      out.destroy();
    }
  } finally {
    input.destroy();
  }
}

describe("exclusiveScanU32", () => {
  for (const n of [0, 1, 255, 256, 257, 1023, 1024, 1025, 65537, 300000, 1024 * 1024 + 3]) {
    it(`matches a host prefix sum, n = ${n}`, async () => {
      const x = randomU32(n, 1000 + n, 1000);
      const want = hostScan(x);
      const { out, total } = await deviceScan(x);
      expect(out[0]).toBe(0);
      expect(total).toBe(want[n]);
      expect(bytesEqual(out, want)).toBe(true);
    });
  }

  it("wraps mod 2^32 like u32 arithmetic", async () => {
    const x = randomU32(5000, 7, 2 ** 32);
    const want = hostScan(x);
    const { out, total } = await deviceScan(x);
    expect(total).toBe(want[5000]);
    expect(bytesEqual(out, want)).toBe(true);
  });

  it("reads only the first n elements of a larger input buffer", async () => {
    const x = randomU32(3000, 9, 50);
    const input = gpu.upload(x, "scan.input");
    const { out, total } = await exclusiveScanU32(gpu, input, 2000, "scan.test");
    const got = new Uint32Array(await gpu.readback(out, 4 * 2001));
    input.destroy();
    out.destroy();
    const want = hostScan(x.subarray(0, 2000));
    expect(total).toBe(want[2000]);
    expect(bytesEqual(got, want)).toBe(true);
  });

  it("gives identical bytes run to run", async () => {
    const x = randomU32(70000, 11, 1 << 16);
    const a = await deviceScan(x);
    const b = await deviceScan(x);
    expect(bytesEqual(a.out, b.out)).toBe(true);
  });

  it("plans without running: steps recorded into a caller's submission", async () => {
    const x = randomU32(4000, 13, 100);
    const input = gpu.upload(x, "scan.input");
    const plan = await exclusiveScanU32Steps(gpu, input, x.length, "scan.plan");
    await gpu.run("scan.plan", plan.steps);
    const got = new Uint32Array(await gpu.readback(plan.out, 4 * 4001));
    for (const t of [input, plan.out, ...plan.temps]) t.destroy();
    expect(bytesEqual(got, hostScan(x))).toBe(true);
  });

  it("refuses lengths beyond the binding limit instead of binding out of range", async () => {
    const input = gpu.upload(new Uint32Array(4), "scan.input");
    const big = Math.floor(gpu.limits.maxStorageBufferBindingSize / 4);
    await expect(exclusiveScanU32(gpu, input, big, "scan.test")).rejects.toThrow(/binding limit/);
    await expect(exclusiveScanU32(gpu, input, -1, "scan.test")).rejects.toThrow(/not an integer/);
    input.destroy();
  });
});
