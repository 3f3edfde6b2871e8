/**
 * The first level's local moving of Leiden and Louvain on the device (kernels/louvain.wgsl): the
 * graph uploaded once, then colour rounds in which every node of one colour picks its best move
 * against the strengths at the round's start, the strengths re-summed as fixed-point integers
 * (order-free, so bit-identical run to run). Shared by leidenGpu and louvainGpu, which do the rest
 * of their algorithms on the host.
 */
import { GpuError, type Gpu, type Step } from "../gpu/device.js";
import type { WGraph } from "./communityCommon.js";

/** Colours per round while many nodes move (simultaneous moves of neighbours are likely) … */
const LM_MANY_COLOURS = 32;
/** … and once a round moves fewer than n/LM_FEW_MOVES nodes (fewer dispatches per round). */
const LM_FEW_COLOURS = 8;
const LM_FEW_MOVES = 100;
// Measured on kang2018_ctrl_5donors / pbmc3k: 4 colours throughout merges clusters (Q 1 % below
// leidenCpu's on some seeds); 16–32 colours while most nodes move give leidenCpu's quality.
const LM_ROUNDS_PER_BATCH = 4;
const LM_MAX_ROUNDS = 200;

/** Whether the graph's arcs and per-node arrays fit the device's binding limit. */
export function fitsLocalMovingGpu(gpu: Gpu, g: WGraph): boolean {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  return g.indices.length * 4 <= limit && 12 * g.n <= limit;
}

/** The first level's graph on the device and the colour-round loop of kernels/louvain.wgsl. */
export class GpuLocalMoving {
  /** Rounds run so far; keeps colourings distinct across iterations, passes and starts. */
  private rounds = 0;

  private constructor(
    private readonly gpu: Gpu,
    private readonly n: number,
    private readonly choose: GPUComputePipeline,
    private readonly apply: GPUComputePipeline,
    private readonly buffers: { indptr: GPUBuffer; indices: GPUBuffer; weights: GPUBuffer; kq: GPUBuffer; memb: GPUBuffer; choice: GPUBuffer; comm: GPUBuffer; moves: GPUBuffer },
    private readonly consts: { gamma: number; invTw: number; invS: number; seed: number },
    private readonly label: string,
  ) {}

  /** `label` names the caller (leiden, louvain) in buffer labels and errors. */
  static async create(gpu: Gpu, g: WGraph, gamma: number, tw: number, seed: number, label: string): Promise<GpuLocalMoving> {
    const code = (await import("../../kernels/louvain.wgsl")).default;
    const [choose, apply] = await Promise.all([gpu.pipeline(code, "choose_move"), gpu.pipeline(code, "apply_totals")]);
    const n = g.n;
    if (!fitsLocalMovingGpu(gpu, g)) {
      const limit = gpu.limits.maxStorageBufferBindingSize;
      throw new GpuError(`${label}Gpu: graph with ${n} nodes and ${g.indices.length} arcs exceeds the ${limit}-byte binding limit`);
    }
    // Fixed point: the largest strength fits in 31 bits; at most 2^-24 resolution.
    let maxK = 0;
    for (let v = 0; v < n; v++) maxK = Math.max(maxK, g.nodeWeight[v]);
    const S = 2 ** Math.min(24, Math.floor(Math.log2(2 ** 31 / maxK)));
    const kq = Uint32Array.from(g.nodeWeight, (k) => Math.round(k * S));
    const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const buffers = {
      indptr: gpu.upload(Uint32Array.from(g.indptr), `${label}.indptr`),
      indices: gpu.upload(new Uint32Array(g.indices.buffer, g.indices.byteOffset, g.indices.length), `${label}.indices`),
      weights: gpu.upload(Float32Array.from(g.weights), `${label}.weights`),
      kq: gpu.upload(kq, `${label}.kq`),
      memb: gpu.createBuffer(4 * n, rw, `${label}.memb`),
      choice: gpu.createBuffer(4 * n, rw, `${label}.choice`),
      comm: gpu.createBuffer(12 * n, rw, `${label}.comm`),
      moves: gpu.createBuffer(4 * (LM_ROUNDS_PER_BATCH + 1), rw, `${label}.moves`),
    };
    return new GpuLocalMoving(gpu, n, choose, apply, buffers, { gamma, invTw: 1 / tw, invS: 1 / S, seed: seed >>> 0 }, label);
  }

  /** Local moving from membership m (ids < n), updated in place. */
  async run(m: Int32Array): Promise<void> {
    const { gpu, n, buffers: b, consts: c } = this;
    const wg = Math.ceil(n / 64);
    // Int32 ids < n have the same bytes as u32.
    gpu.device.queue.writeBuffer(b.memb, 0, m.buffer as ArrayBuffer, m.byteOffset, m.byteLength);
    gpu.device.queue.writeBuffer(b.choice, 0, m.buffer as ArrayBuffer, m.byteOffset, m.byteLength);
    let colours = LM_MANY_COLOURS;
    const params = (colour: number, round: number, slot: number) =>
      gpu.uniforms({ u32: [n, colour, colours, c.seed, round, slot, 0, 0], f32: [c.gamma, c.invTw, c.invS, 0] }, `${this.label}.params`);
    const applyStep = (p: GPUBuffer): Step => ({ pipeline: this.apply, bindings: [p, undefined, undefined, undefined, b.kq, b.memb, b.choice, b.comm, b.moves], workgroups: wg });
    // Strengths of the starting partition (choice = memb: nothing moves).
    const init = params(0, 0, LM_ROUNDS_PER_BATCH);
    try {
      await gpu.run(`${this.label}.init`, [{ clear: b.comm }, { clear: b.moves }, applyStep(init)]);
    } finally {
      init.destroy();
    }
    for (let done = 0; done < LM_MAX_ROUNDS; done += LM_ROUNDS_PER_BATCH) {
      const steps: Step[] = [{ clear: b.moves }];
      const uniforms: GPUBuffer[] = [];
      for (let r = 0; r < LM_ROUNDS_PER_BATCH; r++) {
        for (let colour = 0; colour < colours; colour++) {
          const p = params(colour, this.rounds + r, r);
          uniforms.push(p);
          steps.push(
            { pipeline: this.choose, bindings: [p, b.indptr, b.indices, b.weights, b.kq, b.memb, b.choice, b.comm], workgroups: wg },
            { clear: b.comm },
            applyStep(p),
          );
        }
      }
      let moves: Uint32Array;
      try {
        await gpu.run(`${this.label}.local_moving`, steps);
        moves = new Uint32Array(await gpu.readback(b.moves, 4 * LM_ROUNDS_PER_BATCH));
      } finally {
        for (const u of uniforms) u.destroy();
      }
      this.rounds += LM_ROUNDS_PER_BATCH;
      // A round without moves is a fixed point: later rounds of the batch changed nothing either.
      if (moves.includes(0)) break;
      if (moves[LM_ROUNDS_PER_BATCH - 1] * LM_FEW_MOVES < n) colours = LM_FEW_COLOURS;
    }
    m.set(new Int32Array(await gpu.readback(b.memb, 4 * n)));
  }

  destroy(): void {
    for (const buf of Object.values(this.buffers)) buf.destroy();
  }
}
