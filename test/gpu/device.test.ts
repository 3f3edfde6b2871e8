/** The WebGPU runtime (src/gpu/): adapter, errors, pipeline cache, buffer pool, loss fallback, row chunking, exit. */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireGpu, type Gpu, GpuError, GpuLostError, gpuOrCpu, POOL_MAX_FREE_BYTES } from "../../src/gpu/device.js";
import { chunkIndptr, rowChunks } from "../../src/gpu/chunking.js";
import { bytesEqual, randomCsr, testGpu } from "./util.js";

const DOUBLE = `// double
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < arrayLength(&a)) { a[g.x] = a[g.x] * 2.0; }
}`;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe("acquireGpu", () => {
  it("reports the adapter and the real (not default) limits", () => {
    expect(typeof gpu.info.vendor).toBe("string");
    expect(typeof gpu.info.description).toBe("string");
    expect(typeof gpu.info.isFallbackAdapter).toBe("boolean");
    expect(gpu.limits.maxStorageBufferBindingSize).toBe(gpu.device.limits.maxStorageBufferBindingSize);
    expect(gpu.limits.maxBufferSize).toBeGreaterThan(256 * 2 ** 20); // the default is 256 MiB
  });

  it("honours forceLimits without touching the device's own limits", async () => {
    const small = await acquireGpu({ forceLimits: { maxStorageBufferBindingSize: 4096 } });
    expect(small.limits.maxStorageBufferBindingSize).toBe(4096);
    expect(small.device.limits.maxStorageBufferBindingSize).toBe(gpu.limits.maxStorageBufferBindingSize);
    small.destroy();
  });

  it("fails naming the Debian packages when there is no adapter", async () => {
    const g = globalThis as { navigator?: unknown };
    const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
    Object.defineProperty(globalThis, "navigator", { value: { gpu: { requestAdapter: async () => null } }, configurable: true });
    try {
      await expect(acquireGpu()).rejects.toThrow(/No WebGPU adapter.*mesa-vulkan-drivers libvulkan1/);
    } finally {
      if (saved) Object.defineProperty(globalThis, "navigator", saved);
      else delete g.navigator;
    }
  });
});

describe("Gpu", () => {
  it("runs a kernel, reads back, and caches pipelines by source + entry", async () => {
    const p1 = gpu.pipeline(DOUBLE, "main");
    expect(gpu.pipeline(DOUBLE, "main")).toBe(p1);
    const buf = gpu.upload(Float32Array.of(1, -2, 3.5), "a", GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    await gpu.run("double", [{ pipeline: await p1, bindings: [buf], workgroups: 1 }]);
    expect(Array.from(new Float32Array(await gpu.readback(buf, 12)))).toEqual([2, -4, 7]);
    buf.destroy();
  });

  it("turns a WGSL error into a message with the line", async () => {
    const bad = "// broken\n@compute @workgroup_size(1) fn main() {\n  let x: f32 = undefinedThing;\n}";
    await expect(gpu.pipeline(bad, "main")).rejects.toThrow(/WGSL compile error.*\n.*line 3:.*\n.*undefinedThing/);
  });

  it("turns a validation error at dispatch into an exception", async () => {
    const pipeline = await gpu.pipeline(DOUBLE, "main");
    const err = gpu.run("no bindings", [{ pipeline, bindings: [], workgroups: 1 }]);
    await expect(err).rejects.toBeInstanceOf(GpuError);
    await expect(gpu.run("no bindings", [{ pipeline, bindings: [], workgroups: 1 }])).rejects.toThrow(/validation/);
  });

  it("pools destroyed buffers by exact size and usage, handing them out zeroed", async () => {
    const g = await acquireGpu();
    try {
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const a = g.upload(Float32Array.of(1, 2, 3, 4), "a", usage);
      a.destroy();
      a.destroy(); // a second destroy must not pool it twice
      expect(g.pooledBytes).toBe(16);
      const created = g.poolStats.created;
      const b = g.createBuffer(16, usage, "b");
      expect(b).toBe(a);
      expect(g.poolStats.created).toBe(created);
      expect(g.poolStats.reused).toBe(1);
      expect(Array.from(new Float32Array(await g.readback(b, 16)))).toEqual([0, 0, 0, 0]);
      const afterReadback = g.poolStats.created; // + the readback's staging buffer, pooled again
      expect(afterReadback).toBe(created + 1);
      const c = g.createBuffer(16, usage, "c"); // the pool is empty again: a new buffer
      expect(c).not.toBe(a);
      const d = g.createBuffer(20, usage, "d"); // another size: not the pooled one
      const e = g.createBuffer(16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, "e"); // another usage
      for (const x of [b, c, d, e]) x.destroy();
      expect(g.poolStats.created).toBe(afterReadback + 3);
      // An upload into a pooled buffer holds the new data, not zeros or the old contents.
      const f = g.upload(Float32Array.of(5, 6, 7, 8), "f", usage);
      expect(Array.from(new Float32Array(await g.readback(f, 16)))).toEqual([5, 6, 7, 8]);
      f.destroy();
      g.trimPool();
      expect(g.pooledBytes).toBe(0);
    } finally {
      g.destroy();
    }
  });

  it("keeps the pool under its byte cap (oldest destroyed first) and poisons reused buffers when asked", async () => {
    const g = await acquireGpu({ poisonBuffers: true });
    try {
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const big = POOL_MAX_FREE_BYTES / 4;
      const bufs = Array.from({ length: 5 }, (_, i) => g.createBuffer(big + 4 * i, usage, `big${i}`));
      for (const b of bufs) b.destroy();
      expect(g.pooledBytes).toBeLessThanOrEqual(POOL_MAX_FREE_BYTES);
      // The first released (oldest) went; the last ones stay.
      expect(g.createBuffer(big + 16, usage, "again")).toBe(bufs[4]);
      const small = g.upload(Uint32Array.of(1, 2), "s", usage);
      small.destroy();
      const reused = g.createBuffer(8, usage, "s2");
      expect(reused).toBe(small);
      expect(Array.from(new Uint32Array(await g.readback(reused, 8)))).toEqual([0xffffffff, 0xffffffff]);
    } finally {
      g.destroy();
    }
    expect(g.pooledBytes).toBe(0);
  });

  it("times dispatches per kernel with timestamp queries when asked, leaving results unchanged", async () => {
    const prof = await acquireGpu({ profile: true });
    try {
      expect(prof.profiling).toBe(true); // lavapipe and current NVIDIA drivers have 'timestamp-query'
      const pipeline = await prof.pipeline(DOUBLE, "main");
      const n = 1 << 18;
      const input = Float32Array.from({ length: n }, (_, i) => i % 7);
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
      const a = prof.upload(input, "a", usage);
      const b = gpu.upload(input, "b", usage);
      const step = (buf: GPUBuffer) => ({ pipeline, bindings: [buf], workgroups: n / 64 });
      await prof.run("double x3", [step(a), { clear: prof.createBuffer(16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST) }, step(a), step(a)]);
      const plain = await gpu.pipeline(DOUBLE, "main");
      await gpu.run("double x3", [0, 1, 2].map(() => ({ pipeline: plain, bindings: [b], workgroups: n / 64 })));
      expect(bytesEqual(new Uint8Array(await prof.readback(a)), new Uint8Array(await gpu.readback(b)))).toBe(true);
      const profile = prof.kernelProfile();
      expect(profile.map((k) => [k.kernel, k.dispatches])).toEqual([["double main", 3]]);
      expect(profile[0].ms).toBeGreaterThan(0);
      expect(profile[0].ms).toBeLessThan(60_000);
      expect(gpu.kernelProfile()).toEqual([]); // not profiling: nothing recorded
      prof.resetProfile();
      expect(prof.kernelProfile()).toEqual([]);
      a.destroy();
      b.destroy();
    } finally {
      prof.destroy();
    }
  });

  it("splits large workgroup counts into a 2-D grid", () => {
    const max = gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [1, max, max + 1, 10 * max + 3]) {
      const [x, y] = gpu.grid(n);
      expect(x).toBeLessThanOrEqual(max);
      expect(x * y).toBeGreaterThanOrEqual(n);
      expect(x * (y - 1)).toBeLessThan(n);
    }
  });

  it("on device loss: flag, callback, GpuLostError, and one warning from gpuOrCpu", async () => {
    const g = await acquireGpu();
    const seen: string[] = [];
    g.onLost((m) => seen.push(m));
    g.device.destroy(); // what a lost device looks like to the caller
    await g.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    expect(g.lost).toBe(true);
    expect(seen.length).toBe(1);
    expect(() => g.createBuffer(16, GPUBufferUsage.STORAGE)).toThrow(GpuLostError);
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    const gpuFn = async () => {
      g.createBuffer(16, GPUBufferUsage.STORAGE);
      return "gpu";
    };
    expect(await gpuOrCpu(g, "step A", gpuFn, () => "cpu", warn)).toBe("cpu");
    expect(await gpuOrCpu(g, "step B", gpuFn, () => "cpu", warn)).toBe("cpu");
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/lost.*CPU/);
  });

  it("lets the process exit promptly after destroy()", () => {
    const t0 = Date.now();
    const res = spawnSync("npx", ["tsx", "test/gpu/fixtures/exitAfterDestroy.ts"], { encoding: "utf8", timeout: 30_000 });
    expect(res.error).toBeUndefined();
    expect(res.status).toBe(0);
    expect(res.stdout.trim()).toBe("2,4,6");
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});

describe("rowChunks", () => {
  it("covers all rows in order within the byte limit, rebasing row pointers", () => {
    const X = randomCsr(400, 300, 9, { emptyRows: 0.3, density: 0.2 });
    const limit = 1024; // 256 nonzeros or 255 rows per chunk
    const chunks = rowChunks(X.indptr, X.nRows, limit);
    expect(chunks.length).toBeGreaterThan(5);
    let row = 0;
    for (const c of chunks) {
      expect(c.rowStart).toBe(row);
      expect(c.rowEnd).toBeGreaterThan(c.rowStart);
      expect((c.nnzEnd - c.nnzStart) * 4).toBeLessThanOrEqual(limit);
      expect((c.rowEnd - c.rowStart + 1) * 4).toBeLessThanOrEqual(limit);
      expect(c.nnzStart).toBe(X.indptr[c.rowStart]);
      expect(c.nnzEnd).toBe(X.indptr[c.rowEnd]);
      const local = chunkIndptr(X.indptr, c);
      expect(local[0]).toBe(0);
      expect(local[local.length - 1]).toBe(c.nnzEnd - c.nnzStart);
      row = c.rowEnd;
    }
    expect(row).toBe(X.nRows);
  });

  it("limits rows per chunk for per-row outputs and keeps row pointers beyond 2^32 exact", () => {
    const big = 2 ** 33;
    const indptr = Float64Array.of(big, big, big + 5, big + 5, big + 9);
    // 40 bytes: 10 nonzeros fit, but only 40 / 12 − 1 = 2 rows of 12-byte outputs.
    expect(rowChunks(indptr, 4, 40, 4, 12).map((c) => [c.rowStart, c.rowEnd])).toEqual([[0, 2], [2, 4]]);
    expect(rowChunks(indptr, 4, 40, 4, 4).map((c) => [c.rowStart, c.rowEnd])).toEqual([[0, 4]]);
    expect(Array.from(chunkIndptr(indptr, rowChunks(indptr, 4, 1 << 20)[0]))).toEqual([0, 0, 5, 5, 9]);
    expect(rowChunks(new Float64Array(1), 0, 1024)).toEqual([]);
  });

  it("refuses a row larger than one binding", () => {
    expect(() => rowChunks(Float64Array.of(0, 2, 300), 2, 1024)).toThrow(/row 1 has 298 nonzeros/);
  });
});
