/**
 * The device's ceiling, measured with biology-free kernels (kernels/ceiling.wgsl), so the bench
 * can say how far each step is from what the card can do:
 * - memory bandwidth: a large device buffer copied by the copy engine (copyBufferToBuffer) and
 *   by a vec4 shader copy; GB/s counts bytes read plus bytes written;
 * - arithmetic: f32 C = A·B with the project's two matmul kernels (register-tiled 4×4 per
 *   invocation, and workgroup-tiled 64×64 with 4×4 per invocation); GFLOP/s = 2·m·n·k / time.
 * Each figure is the median of a few timed submissions, each long enough (targetMs) that the
 * submit / wait overhead is small; the ceiling is the best method's median.
 * Times are host wall clock around submit + onSubmittedWorkDone (no timestamp queries: they are
 * optional in WebGPU), after a warm-up that compiles the pipelines.
 */
import type { Gpu, GpuAdapterInfo, Step } from "./device.js";

export type MatmulKernel = "register" | "tiled";

const ENTRY: Record<MatmulKernel, string> = { register: "matmul_reg", tiled: "matmul_tiled" };
/** Padding each kernel needs: m and n to `mn`, k to `k` (the host pads with zeros). */
const PAD: Record<MatmulKernel, { mn: number; k: number }> = { register: { mn: 4, k: 4 }, tiled: { mn: 64, k: 16 } };

async function code(): Promise<string> {
  return (await import("../../kernels/ceiling.wgsl")).default;
}

const roundUp = (x: number, m: number) => Math.ceil(x / m) * m;

function padded(src: Float32Array, rows: number, cols: number, prows: number, pcols: number): Float32Array {
  if (rows === prows && cols === pcols) return src;
  const out = new Float32Array(prows * pcols);
  for (let i = 0; i < rows; i++) out.set(src.subarray(i * cols, i * cols + cols), i * pcols);
  return out;
}

async function matmulDispatch(gpu: Gpu, kernel: MatmulKernel, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, m: number, k: number, n: number): Promise<{ step: Step; params: GPUBuffer }> {
  const pipeline = await gpu.pipeline(await code(), ENTRY[kernel]);
  const params = gpu.uniforms({ u32: [m / 4, k / 4, n / 4] }, "matmul.params");
  const workgroups = kernel === "register" ? Math.ceil((m / 4) * (n / 4) / 64) : (m / 64) * (n / 64);
  return { step: { pipeline, bindings: [params, undefined, undefined, a, b, c], workgroups }, params };
}

/**
 * C = A·B in float32 on the device. a: m×k row-major, b: k×n row-major; returns m×n row-major.
 * Inputs are zero-padded to the kernel's tile (zeros add nothing), the padding cropped from C.
 */
export async function matmulGpu(gpu: Gpu, a: Float32Array, b: Float32Array, m: number, k: number, n: number, kernel: MatmulKernel = "tiled"): Promise<Float32Array> {
  if (a.length !== m * k || b.length !== k * n) throw new Error(`matmulGpu: a has ${a.length} values (want ${m}×${k}), b ${b.length} (want ${k}×${n})`);
  const out = new Float32Array(m * n);
  if (m === 0 || n === 0) return out;
  const pad = PAD[kernel];
  const [pm, pk, pn] = [roundUp(m, pad.mn), roundUp(Math.max(k, 1), pad.k), roundUp(n, pad.mn)];
  const A = gpu.upload(padded(a, m, k, pm, pk), "matmul.A");
  const B = gpu.upload(padded(b, k, n, pk, pn), "matmul.B");
  const C = gpu.createBuffer(pm * pn * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, "matmul.C");
  const { step, params } = await matmulDispatch(gpu, kernel, A, B, C, pm, pk, pn);
  try {
    await gpu.run("matmul", [step]);
    const c = new Float32Array(await gpu.readback(C, pm * pn * 4));
    for (let i = 0; i < m; i++) out.set(c.subarray(i * pn, i * pn + n), i * n);
    return out;
  } finally {
    for (const x of [A, B, C, params]) x.destroy();
  }
}

/** Copies bytes through the device (copy engine or shader copy) and reads them back; for tests. */
export async function copyRoundTripGpu(gpu: Gpu, data: Uint8Array, via: "copy" | "shader"): Promise<Uint8Array> {
  const size = roundUp(Math.max(data.byteLength, 16), 16);
  const buf = new Uint8Array(size);
  buf.set(data);
  const src = gpu.upload(buf, "copy.src", GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const dst = gpu.createBuffer(size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, "copy.dst");
  const made: GPUBuffer[] = [src, dst];
  try {
    const steps: Step[] = [];
    if (via === "copy") steps.push({ copy: { src, srcOffset: 0, dst, dstOffset: 0, size } });
    else {
      const params = gpu.uniforms({ u32: [size / 16] }, "copy.params");
      made.push(params);
      steps.push({ pipeline: await gpu.pipeline(await code(), "copy_vec4"), bindings: [params, src, dst], workgroups: Math.ceil(size / 16 / 256) });
    }
    await gpu.run("copy", steps);
    return new Uint8Array(await gpu.readback(dst, data.byteLength));
  } finally {
    for (const x of made) x.destroy();
  }
}

export interface CeilingMethod {
  /** Median over timed runs: GB/s (bytes read + written) for copies, GFLOP/s for matmuls. */
  median: number;
  runs: number[];
  /** Copies: buffer bytes; matmuls: the square size n (n×n·n×n). */
  size: number;
  /** Operations per timed submission. */
  reps: number;
}

export interface GpuCeiling {
  adapter: GpuAdapterInfo;
  /** Best copy method's median GB/s (bytes read + bytes written per second). */
  copyGBps: number;
  copyMethod: "copyBufferToBuffer" | "shader copy_vec4";
  /** Best matmul kernel's median GFLOP/s (f32). */
  matmulGflops: number;
  matmulKernel: MatmulKernel;
  methods: Record<string, CeilingMethod>;
  ms: number;
}

export interface CeilingOptions {
  /** Timed runs per method (median reported). Default 5. */
  runs?: number;
  /** Each timed submission repeats the operation until it lasts about this long. Default 60 ms. */
  targetMs?: number;
  /** Largest copy buffer; also capped by the device's binding and buffer limits. Default 256 MiB. */
  maxCopyBytes?: number;
  /** Largest square matmul size tried (doubling from 256 until one product takes targetMs / 4). Default 4096. */
  maxMatmulN?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

async function timed(gpu: Gpu, label: string, steps: Step[]): Promise<number> {
  const t = performance.now();
  await gpu.run(label, steps);
  return performance.now() - t;
}

/** Times `one` repeated enough to last targetMs, `runs` times; returns work-per-ms rates. */
async function measure(gpu: Gpu, label: string, one: Step, workPerOp: number, o: Required<CeilingOptions>, size: number): Promise<CeilingMethod> {
  await timed(gpu, label, [one]); // warm-up: pipeline compile, first-touch of pages
  const t1 = await timed(gpu, label, [one]);
  const reps = Math.max(1, Math.min(64, Math.ceil(o.targetMs / Math.max(t1, 1e-3))));
  const steps = Array<Step>(reps).fill(one);
  const runs: number[] = [];
  for (let r = 0; r < o.runs; r++) runs.push((workPerOp * reps) / (await timed(gpu, label, steps)) / 1e6);
  return { median: median(runs), runs, size, reps };
}

async function fill(gpu: Gpu, buf: GPUBuffer, bytes: number, seed: number): Promise<void> {
  const params = gpu.uniforms({ u32: [bytes / 16, seed] }, "fill.params");
  await gpu.run("fill", [{ pipeline: await gpu.pipeline(await code(), "fill_pattern"), bindings: [params, undefined, buf], workgroups: Math.ceil(bytes / 16 / 256) }]);
  params.destroy();
}

/** Measures copy bandwidth and matmul throughput on this device (a few seconds on lavapipe). */
export async function measureCeiling(gpu: Gpu, opts: CeilingOptions = {}): Promise<GpuCeiling> {
  const o: Required<CeilingOptions> = { runs: 5, targetMs: 60, maxCopyBytes: 256 * 2 ** 20, maxMatmulN: 4096, ...opts };
  const t0 = performance.now();
  const methods: Record<string, CeilingMethod> = {};
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

  // --- copy: one buffer size for both methods, as large as the limits allow
  const bytes = Math.floor(Math.min(o.maxCopyBytes, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 16) * 16;
  const src = gpu.createBuffer(bytes, usage, "ceiling.src");
  const dst = gpu.createBuffer(bytes, usage, "ceiling.dst");
  const params = gpu.uniforms({ u32: [bytes / 16] }, "ceiling.copy");
  try {
    await fill(gpu, src, bytes, 1);
    methods.copyBufferToBuffer = await measure(gpu, "ceiling copy", { copy: { src, srcOffset: 0, dst, dstOffset: 0, size: bytes } }, 2 * bytes, o, bytes);
    const pipeline = await gpu.pipeline(await code(), "copy_vec4");
    methods["shader copy_vec4"] = await measure(gpu, "ceiling shader copy", { pipeline, bindings: [params, src, dst], workgroups: Math.ceil(bytes / 16 / 256) }, 2 * bytes, o, bytes);
  } finally {
    for (const x of [src, dst, params]) x.destroy();
  }

  // --- matmul: square n, doubled until one product is long enough to time
  for (const kernel of ["register", "tiled"] as MatmulKernel[]) {
    let n = 256;
    for (;;) {
      const bytesN = n * n * 4;
      const A = gpu.createBuffer(bytesN, usage, "ceiling.A");
      const B = gpu.createBuffer(bytesN, usage, "ceiling.B");
      const C = gpu.createBuffer(bytesN, usage, "ceiling.C");
      try {
        await fill(gpu, A, bytesN, 2);
        await fill(gpu, B, bytesN, 3);
        const { step, params: p } = await matmulDispatch(gpu, kernel, A, B, C, n, n, n);
        await timed(gpu, "ceiling matmul", [step]);
        const t = await timed(gpu, "ceiling matmul", [step]);
        const bigger = 2 * n <= o.maxMatmulN && (2 * n) ** 2 * 4 <= Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
        if (t < o.targetMs / 4 && bigger) {
          p.destroy();
          n *= 2;
          continue;
        }
        methods[`matmul ${kernel}`] = await measure(gpu, "ceiling matmul", step, 2 * n ** 3, o, n);
        p.destroy();
        break;
      } finally {
        for (const x of [A, B, C]) x.destroy();
      }
    }
  }

  const copyMethod = methods.copyBufferToBuffer.median >= methods["shader copy_vec4"].median ? "copyBufferToBuffer" : "shader copy_vec4";
  const matmulKernel: MatmulKernel = methods["matmul register"].median >= methods["matmul tiled"].median ? "register" : "tiled";
  return {
    adapter: gpu.info,
    copyGBps: methods[copyMethod].median,
    copyMethod,
    matmulGflops: methods[`matmul ${matmulKernel}`].median,
    matmulKernel,
    methods,
    ms: performance.now() - t0,
  };
}
