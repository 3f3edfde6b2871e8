/**
 * WebGPU device acquisition and the small runtime every GPU op uses: real adapter limits, a
 * compiled-pipeline cache, a buffer pool, buffer helpers (create / upload / readback), error
 * scopes that turn validation and out-of-memory errors into readable exceptions, and device-loss
 * tracking so a caller can fall back to the CPU twin. Knows nothing of biology.
 *
 * Node: the `webgpu` package (Dawn); its `create()` result is kept for the process's life (Dawn
 * crashes if it is garbage-collected under a live device).
 * Browser: navigator.gpu, same interface.
 */

export const SOFTWARE_ADAPTER_HINT =
  "On Debian bookworm without a GPU install Mesa's lavapipe from bookworm-backports: " +
  "apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 " +
  "(as root: bash scripts/setup-webgpu.sh).";

export class GpuError extends Error {
  override name = "GpuError";
}

/** Thrown by Gpu methods once the device is lost; the caller should use the CPU twin. */
export class GpuLostError extends GpuError {
  override name = "GpuLostError";
}

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  isFallbackAdapter: boolean;
}

/** The limits the ops plan with: the device's, or smaller where forceLimits asked. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxStorageBuffersPerShaderStage: number;
}

export interface AcquireOptions {
  /** Plan as if the adapter had these (smaller) limits; used to exercise chunking in tests. */
  forceLimits?: { maxStorageBufferBindingSize?: number };
  /** Fill every new buffer with 0xFF bytes (NaN as f32, 2^32−1 as u32), so tests see unwritten outputs. */
  poisonBuffers?: boolean;
  /**
   * Time every dispatch on the device with timestamp queries (where the adapter has the
   * 'timestamp-query' feature), summed per kernel: Gpu.kernelProfile(). Each run then waits for
   * its timestamps too; for benchmarks, not for production runs.
   */
  profile?: boolean;
}

/** Device time of one kernel (WGSL file and entry point), summed over its dispatches. */
export interface KernelTime {
  kernel: string;
  dispatches: number;
  ms: number;
}

/** Timestamps per submission at most (two per dispatch); later dispatches of a larger run go untimed. */
const MAX_TIMESTAMPS = 4096;

/** One compute dispatch: bindings by binding number (holes skipped), workgroup count. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  bindings: (GPUBuffer | undefined)[];
  workgroups: number;
}

/** One step recorded into a submission: a dispatch, or a buffer clear / copy. */
export type Step =
  | Dispatch
  | { clear: GPUBuffer }
  | { copy: { src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number } };

interface NavigatorGpu {
  requestAdapter(options?: GPURequestAdapterOptions): Promise<GPUAdapter | null>;
}

// Node: one Dawn instance per process, referenced for the process's life — if it were
// garbage-collected while a device lives, Dawn would crash. It does not keep the process alive.
let dawnInstance: NavigatorGpu | undefined;

async function nodeNavigatorGpu(): Promise<NavigatorGpu> {
  if (dawnInstance) return dawnInstance;
  let mod: { create(args: string[]): NavigatorGpu; globals: object };
  try {
    mod = (await import("webgpu")) as unknown as typeof mod;
  } catch (e) {
    throw new GpuError(`WebGPU is unavailable: the 'webgpu' npm package failed to load (${(e as Error).message}).`);
  }
  Object.assign(globalThis, mod.globals);
  // Unquantized timestamps (Dawn rounds them by default, a browser's defence against timing
  // attacks) for the kernel profile.
  dawnInstance = mod.create(["disable-dawn-features=timestamp_quantization"]);
  return dawnInstance;
}

export async function acquireGpu(opts: AcquireOptions = {}): Promise<Gpu> {
  const navGpu = (globalThis as { navigator?: { gpu?: NavigatorGpu } }).navigator?.gpu ?? (await nodeNavigatorGpu());
  const adapter = await navGpu.requestAdapter();
  if (!adapter) {
    throw new GpuError(`No WebGPU adapter found. ${SOFTWARE_ADAPTER_HINT}`);
  }
  const a = adapter.limits;
  const profile = (opts.profile ?? false) && adapter.features.has("timestamp-query");
  const device = await adapter.requestDevice({
    label: "cellgpu",
    requiredFeatures: profile ? ["timestamp-query"] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxBufferSize: a.maxBufferSize,
      maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    },
  });
  const i = adapter.info;
  const info: GpuAdapterInfo = {
    vendor: i.vendor,
    architecture: i.architecture,
    description: i.description,
    // Older implementations expose this on the adapter rather than on info.
    isFallbackAdapter: Boolean(
      (i as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
        (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
  };
  const d = device.limits;
  const forced = opts.forceLimits?.maxStorageBufferBindingSize;
  const limits: GpuLimits = {
    maxStorageBufferBindingSize: Math.min(d.maxStorageBufferBindingSize, forced ?? Infinity),
    maxBufferSize: d.maxBufferSize,
    maxComputeWorkgroupsPerDimension: d.maxComputeWorkgroupsPerDimension,
    maxComputeInvocationsPerWorkgroup: d.maxComputeInvocationsPerWorkgroup,
    maxStorageBuffersPerShaderStage: d.maxStorageBuffersPerShaderStage,
  };
  const gpu = new Gpu(device, info, limits);
  gpu.poisonBuffers = opts.poisonBuffers ?? false;
  gpu.profiling = profile;
  return gpu;
}

/** At most this many bytes of released buffers wait in a Gpu's pool (the oldest are destroyed first). */
export const POOL_MAX_FREE_BYTES = 256 * 1024 * 1024;

export class Gpu {
  /** True once the device is lost (or destroyed); every method then throws GpuLostError. */
  lost = false;
  lostMessage = "";
  poisonBuffers = false;
  /** Whether dispatches are timed (acquireGpu's `profile`, where the adapter can). */
  profiling = false;
  private readonly kernelTimes = new Map<string, KernelTime>();
  private readonly kernelNames = new WeakMap<GPUComputePipeline, string>();
  /** Buffers created on the device and buffers handed out again from the pool. */
  readonly poolStats = { created: 0, reused: 0 };
  /**
   * The pool: buffers their owners destroyed, by exact (size, usage), kept for the next request
   * of that shape — the ops ask for the same shapes over and over (a uniform block per dispatch,
   * per-level arrays of the community detection, staging buffers), and each creation is a driver
   * call. A buffer from createBuffer goes back here when its owner calls destroy(); a pooled
   * buffer is handed out zeroed (0xFF when poisoning), as a new one would be. Buffers without
   * COPY_DST (which could not be cleared) are not pooled.
   */
  private readonly free = new Map<string, GPUBuffer[]>();
  /** Free buffers in release order, with their real destroy. */
  private readonly freeOrder = new Map<GPUBuffer, () => void>();
  private freeBytes = 0;
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly lostCallbacks: ((message: string) => void)[] = [];
  private destroyed = false;

  constructor(
    readonly device: GPUDevice,
    readonly info: GpuAdapterInfo,
    readonly limits: GpuLimits,
  ) {
    device.lost.then((l) => {
      this.lost = true;
      this.lostMessage = `WebGPU device lost (${l.reason}): ${l.message}`;
      this.trimPool();
      if (!this.destroyed) for (const cb of this.lostCallbacks) cb(this.lostMessage);
    });
  }

  /** Called once if the device is lost while in use (not on destroy()). */
  onLost(cb: (message: string) => void): void {
    this.lostCallbacks.push(cb);
  }

  /** Compiled pipeline for (WGSL source, entry point), compiled once per Gpu. */
  pipeline(code: string, entryPoint: string): Promise<GPUComputePipeline> {
    this.checkLive();
    const key = `${entryPoint}\u0000${code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(code, entryPoint);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private async compile(code: string, entryPoint: string): Promise<GPUComputePipeline> {
    const label = `${entryPoint} (${firstLine(code)})`;
    const kernel = `${firstLine(code).split(/\s/)[0]} ${entryPoint}`;
    const module = this.device.createShaderModule({ code, label });
    const msgs = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error");
    if (msgs.length) {
      const lines = code.split("\n");
      const text = msgs.map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${lines[m.lineNum - 1]?.trim() ?? ""}`);
      throw new GpuError(`WGSL compile error in ${label}:\n${text.join("\n")}`);
    }
    const pipeline = await this.scoped(`creating pipeline ${label}`, () =>
      this.device.createComputePipelineAsync({ label, layout: "auto", compute: { module, entryPoint } }),
    );
    this.kernelNames.set(pipeline, kernel);
    return pipeline;
  }

  /**
   * A buffer of at least byteSize bytes (rounded up to 4, never 0), zeroed (0xFF bytes when
   * poisoning; staging buffers for reading are not filled). Its destroy() returns it to the pool.
   */
  createBuffer(byteSize: number, usage: GPUBufferUsageFlags, label = "buffer"): GPUBuffer {
    return this.acquire(byteSize, usage, label, false);
  }

  /** createBuffer, skipping the fill of a pooled buffer when the caller overwrites all of it at once. */
  private acquire(byteSize: number, usage: GPUBufferUsageFlags, label: string, overwritten: boolean): GPUBuffer {
    this.checkLive();
    const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
    if (size > this.limits.maxBufferSize) {
      throw new GpuError(`${label}: ${size} bytes exceeds maxBufferSize ${this.limits.maxBufferSize}`);
    }
    const pooled = this.free.get(`${size}:${usage}`)?.pop();
    if (pooled) {
      this.freeOrder.delete(pooled);
      this.freeBytes -= size;
      this.poolStats.reused++;
      pooled.label = label;
      if (!overwritten && !(usage & GPUBufferUsage.MAP_READ)) this.fill(pooled);
      return pooled;
    }
    const poison = this.poisonBuffers && !(usage & GPUBufferUsage.MAP_READ);
    const buf = this.device.createBuffer({ size, usage, label, mappedAtCreation: poison });
    if (poison) {
      new Uint8Array(buf.getMappedRange()).fill(0xff);
      buf.unmap();
    }
    this.poolStats.created++;
    if (usage & GPUBufferUsage.COPY_DST) {
      const destroy = buf.destroy.bind(buf);
      buf.destroy = () => {
        this.release(buf, destroy);
        return undefined;
      };
    }
    return buf;
  }

  /** A pooled buffer made to look new: zeros, or 0xFF bytes when poisoning. */
  private fill(buf: GPUBuffer): void {
    if (this.poisonBuffers) {
      this.device.queue.writeBuffer(buf, 0, new Uint8Array(buf.size).fill(0xff));
    } else {
      const enc = this.device.createCommandEncoder({ label: "pool.clear" });
      enc.clearBuffer(buf);
      this.device.queue.submit([enc.finish()]);
    }
  }

  /** A destroyed buffer into the pool (a second destroy is a no-op), oldest pooled ones destroyed beyond the cap. */
  private release(buf: GPUBuffer, destroy: () => void): void {
    if (this.freeOrder.has(buf)) return;
    if (this.lost || buf.size > POOL_MAX_FREE_BYTES || buf.mapState !== "unmapped") {
      destroy();
      return;
    }
    const key = `${buf.size}:${buf.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
    this.freeOrder.set(buf, destroy);
    this.freeBytes += buf.size;
    for (const [old, destroyOld] of this.freeOrder) {
      if (this.freeBytes <= POOL_MAX_FREE_BYTES) break;
      const l = this.free.get(`${old.size}:${old.usage}`)!;
      l.splice(l.indexOf(old), 1);
      this.freeOrder.delete(old);
      this.freeBytes -= old.size;
      destroyOld();
    }
  }

  /** Destroys every pooled buffer (the device memory they hold is released). */
  trimPool(): void {
    for (const destroy of this.freeOrder.values()) destroy();
    this.freeOrder.clear();
    this.free.clear();
    this.freeBytes = 0;
  }

  /** Bytes held by released buffers waiting in the pool. */
  get pooledBytes(): number {
    return this.freeBytes;
  }

  /** A storage buffer (by default) holding a copy of data. */
  upload(data: ArrayBufferView, label = "upload", usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE): GPUBuffer {
    const buf = this.acquire(data.byteLength, usage | GPUBufferUsage.COPY_DST, label, data.byteLength > 0);
    if (data.byteLength > 0) {
      if (data.byteLength % 4 === 0) {
        this.device.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
      } else {
        const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
        padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        this.device.queue.writeBuffer(buf, 0, padded);
      }
    }
    return buf;
  }

  /** A uniform buffer of 32-bit words; each value is written as u32 unless listed in f32. */
  uniforms(values: { u32?: number[]; f32?: number[] }, label = "params"): GPUBuffer {
    const u = values.u32 ?? [];
    const f = values.f32 ?? [];
    const words = new ArrayBuffer(Math.ceil((u.length + f.length) / 4) * 16 || 16);
    new Uint32Array(words, 0, u.length).set(u);
    new Float32Array(words, u.length * 4, f.length).set(f);
    return this.upload(new Uint8Array(words), label, GPUBufferUsage.UNIFORM);
  }

  /** Workgroup grid [x, y] covering `count` workgroups within maxComputeWorkgroupsPerDimension. */
  grid(count: number): [number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (count <= max) return [Math.max(count, 1), 1];
    const y = Math.ceil(count / max);
    return [Math.ceil(count / y), y];
  }

  /** Records the steps into one command buffer, submits it and waits; GPU errors throw. */
  async run(label: string, steps: Step[]): Promise<void> {
    this.checkLive();
    await this.scoped(label, async () => {
      const enc = this.device.createCommandEncoder({ label });
      const timed = this.profiling ? this.startTimestamps(steps) : undefined;
      for (const s of steps) {
        if ("clear" in s) enc.clearBuffer(s.clear);
        else if ("copy" in s) enc.copyBufferToBuffer(s.copy.src, s.copy.srcOffset, s.copy.dst, s.copy.dstOffset, s.copy.size);
        else {
          const entries: GPUBindGroupEntry[] = [];
          s.bindings.forEach((buffer, binding) => {
            if (buffer) entries.push({ binding, resource: { buffer } });
          });
          const group = this.device.createBindGroup({ label, layout: s.pipeline.getBindGroupLayout(0), entries });
          const slot = timed?.slots.get(s);
          const pass = enc.beginComputePass(
            slot === undefined ? { label } : { label, timestampWrites: { querySet: timed!.querySet, beginningOfPassWriteIndex: 2 * slot, endOfPassWriteIndex: 2 * slot + 1 } },
          );
          pass.setPipeline(s.pipeline);
          pass.setBindGroup(0, group);
          const [x, y] = this.grid(s.workgroups);
          pass.dispatchWorkgroups(x, y);
          pass.end();
        }
      }
      if (timed) timed.resolve(enc);
      this.device.queue.submit([enc.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      if (timed) await timed.collect();
    });
    this.checkLive();
  }

  /** Timestamp slots for the run's first MAX_TIMESTAMPS / 2 dispatches, and how to read them into the profile. */
  private startTimestamps(steps: Step[]) {
    const dispatches = steps.filter((s): s is Dispatch => "pipeline" in s).slice(0, MAX_TIMESTAMPS / 2);
    if (dispatches.length === 0) return undefined;
    const count = 2 * dispatches.length;
    const querySet = this.device.createQuerySet({ type: "timestamp", count, label: "profile" });
    const resolved = this.device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: "profile.resolve" });
    const staging = this.device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: "profile.read" });
    const slots = new Map<Step, number>(dispatches.map((d, i) => [d, i]));
    return {
      querySet,
      slots,
      resolve: (enc: GPUCommandEncoder) => {
        enc.resolveQuerySet(querySet, 0, count, resolved, 0);
        enc.copyBufferToBuffer(resolved, 0, staging, 0, 8 * count);
      },
      collect: async () => {
        try {
          await staging.mapAsync(GPUMapMode.READ);
          const t = new BigUint64Array(staging.getMappedRange());
          dispatches.forEach((d, i) => {
            const kernel = this.kernelNames.get(d.pipeline) ?? d.pipeline.label;
            const entry = this.kernelTimes.get(kernel) ?? { kernel, dispatches: 0, ms: 0 };
            // A timestamp pair can come back reversed or zero on some drivers: count it as 0.
            entry.ms += t[2 * i + 1] > t[2 * i] ? Number(t[2 * i + 1] - t[2 * i]) / 1e6 : 0;
            entry.dispatches++;
            this.kernelTimes.set(kernel, entry);
          });
          staging.unmap();
        } finally {
          querySet.destroy();
          resolved.destroy();
          staging.destroy();
        }
      },
    };
  }

  /** Device time per kernel since the last resetProfile(), largest first (empty unless profiling). */
  kernelProfile(): KernelTime[] {
    return [...this.kernelTimes.values()].map((k) => ({ ...k })).sort((a, b) => b.ms - a.ms);
  }

  resetProfile(): void {
    this.kernelTimes.clear();
  }

  /** Copies byteLength bytes of a buffer (which needs COPY_SRC usage) back to the host. */
  async readback(src: GPUBuffer, byteLength = src.size): Promise<ArrayBuffer> {
    return (await this.readbackAll([{ buffer: src, byteLength }]))[0];
  }

  /** Several readbacks through one staging buffer and one submission. */
  async readbackAll(items: { buffer: GPUBuffer; byteLength: number }[]): Promise<ArrayBuffer[]> {
    this.checkLive();
    const offsets: number[] = [];
    let size = 0;
    for (const it of items) {
      offsets.push(size);
      size += Math.max(4, Math.ceil(it.byteLength / 4) * 4);
    }
    const staging = this.acquire(size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, "readback", true);
    try {
      await this.run(
        "readback",
        items.map((it, i) => ({
          copy: { src: it.buffer, srcOffset: 0, dst: staging, dstOffset: offsets[i], size: Math.max(4, Math.ceil(it.byteLength / 4) * 4) },
        })),
      );
      await staging.mapAsync(GPUMapMode.READ);
      const mapped = staging.getMappedRange(0, size);
      const out = items.map((it, i) => mapped.slice(offsets[i], offsets[i] + it.byteLength));
      staging.unmap();
      return out;
    } catch (e) {
      this.checkLive();
      throw e;
    } finally {
      staging.destroy();
    }
  }

  /** Destroys the device and releases Dawn; the process can exit right after. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.trimPool();
    this.destroyed = true;
    this.lost = true;
    this.lostMessage = "WebGPU device destroyed";
    this.pipelines.clear();
    this.device.destroy();
  }

  private checkLive(): void {
    if (this.lost) throw new GpuLostError(this.lostMessage);
  }

  /** Runs fn inside validation / out-of-memory / internal error scopes; any error throws. */
  private async scoped<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const d = this.device;
    d.pushErrorScope("internal");
    d.pushErrorScope("out-of-memory");
    d.pushErrorScope("validation");
    let result: T | undefined;
    let thrown: unknown;
    try {
      result = await fn();
    } catch (e) {
      thrown = e;
    }
    const errors = [await d.popErrorScope(), await d.popErrorScope(), await d.popErrorScope()];
    const kinds = ["validation", "out-of-memory", "internal"];
    const found = errors.map((e, i) => (e ? `${kinds[i]} error: ${e.message}` : "")).filter(Boolean);
    if (found.length) throw new GpuError(`WebGPU ${what}: ${found.join("; ")}`);
    if (thrown !== undefined) {
      if (thrown instanceof GpuError) throw thrown;
      throw new GpuError(`WebGPU ${what}: ${(thrown as Error).message ?? String(thrown)}`);
    }
    return result as T;
  }
}

/**
 * Runs the GPU version of an op; if the device is lost (before or during), warns once per Gpu and
 * runs the CPU twin instead. Other errors propagate: they are bugs, not reasons to fall back.
 */
export async function gpuOrCpu<T>(
  gpu: Gpu,
  what: string,
  onGpu: () => Promise<T>,
  onCpu: () => T,
  warn: (msg: string) => void = (m) => console.warn(m),
): Promise<T> {
  try {
    return await onGpu();
  } catch (e) {
    if (!(e instanceof GpuLostError) && !gpu.lost) throw e;
    if (!warnedLost.has(gpu)) {
      warnedLost.add(gpu);
      warn(`cellgpu: ${gpu.lostMessage || (e as Error).message}; running ${what} and later steps on the CPU`);
    }
    return onCpu();
  }
}
const warnedLost = new WeakSet<Gpu>();

function firstLine(code: string): string {
  const m = /^\s*\/\/\s*(.*)$/m.exec(code);
  return (m?.[1] ?? "wgsl").slice(0, 60);
}
