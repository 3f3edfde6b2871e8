/**
 * Exclusive prefix sum of u32 on the device (kernels/scan.wgsl): blocks of 1024 scanned in
 * workgroup memory, the block totals scanned recursively, then added back. Integer arithmetic
 * (mod 2^32), so the result is the same bits whatever the execution order. Knows nothing of
 * biology; used for CSR row pointers and compaction offsets (src/ops/graphGpu.ts).
 */
import { GpuError, type Gpu, type Step } from "./device.js";

/** Elements per scan_blocks workgroup (kernels/scan.wgsl BLOCK). */
const BLOCK = 1024;

/** Steps that scan `input` (n u32) into `out` (n+1 u32), recorded but not run. */
export interface ScanPlan {
  /** n+1 u32: out[i] = input[0] + … + input[i−1]; out[n] = the total (mod 2^32). */
  out: GPUBuffer;
  steps: Step[];
  /** Uniforms and intermediate levels, to destroy once the steps have run (not `out`). */
  temps: GPUBuffer[];
}

/**
 * Plans the scan without running or reading anything, so a caller can record it into a larger
 * submission. `out` has usage STORAGE | COPY_SRC | COPY_DST.
 */
export async function exclusiveScanU32Steps(gpu: Gpu, input: GPUBuffer, n: number, label = "scan"): Promise<ScanPlan> {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31) throw new GpuError(`${label}: scan length ${n} is not an integer in [0, 2^31]`);
  if (4 * (n + 1) > gpu.limits.maxStorageBufferBindingSize) {
    throw new GpuError(`${label}: scanning ${n} values exceeds the ${gpu.limits.maxStorageBufferBindingSize}-byte binding limit`);
  }
  const code = (await import("../../kernels/scan.wgsl")).default;
  const [scan, add] = await Promise.all([gpu.pipeline(code, "scan_blocks"), gpu.pipeline(code, "add_offsets")]);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  // Scans src (nIn values, read as 0 beyond) into m outputs; returns the output buffer.
  const level = (src: GPUBuffer, nIn: number, m: number, depth: number): GPUBuffer => {
    const dst = gpu.createBuffer(4 * m, usage, `${label}.scan${depth}`);
    const blocks = Math.ceil(m / BLOCK);
    const sums = gpu.createBuffer(4 * blocks, usage, `${label}.sums${depth}`);
    const p = gpu.uniforms({ u32: [m, nIn, 0, 0] }, `${label}.params`);
    temps.push(sums, p);
    steps.push({ pipeline: scan, bindings: [p, src, dst, sums], workgroups: blocks });
    if (blocks > 1) {
      const offs = level(sums, blocks, blocks, depth + 1);
      temps.push(offs);
      steps.push({ pipeline: add, bindings: [p, undefined, dst, undefined, offs], workgroups: blocks });
    }
    return dst;
  };
  // One more output than inputs: element n reads as 0, so out[n] is the total.
  const out = level(input, n, n + 1, 0);
  return { out, steps, temps };
}

/** Exclusive scan of `input` (n u32) on the device; also reads the total back. */
export async function exclusiveScanU32(gpu: Gpu, input: GPUBuffer, n: number, label = "scan"): Promise<{ out: GPUBuffer; total: number }> {
  const plan = await exclusiveScanU32Steps(gpu, input, n, label);
  const last = gpu.createBuffer(4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, `${label}.total`);
  try {
    await gpu.run(label, [...plan.steps, { copy: { src: plan.out, srcOffset: 4 * n, dst: last, dstOffset: 0, size: 4 } }]);
    const total = new Uint32Array(await gpu.readback(last, 4))[0];
    return { out: plan.out, total };
  } catch (e) {
    plan.out.destroy();
    throw e;
  } finally {
    last.destroy();
    for (const t of plan.temps) t.destroy();
  }
}
