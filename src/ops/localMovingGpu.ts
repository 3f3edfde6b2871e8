/**
 * Local moving of Leiden and Louvain, and Leiden's refinement, on the device
 * (kernels/louvain.wgsl): colour rounds in which every node of one colour picks its best move
 * against the community strengths at the round's start, then the strengths are re-summed as
 * exact 64-bit fixed-point integers (order-free, so bit-identical run to run). The graph is a
 * DeviceGraph (src/ops/graphGpu.ts) that stays on the device; louvainGpu moves host memberships
 * through run(), leidenGpu keeps everything on the device.
 */
import { GpuError, type Gpu, type Step } from "../gpu/device.js";
import type { WGraph } from "./communityCommon.js";
import { destroyGraph, uploadGraph, type DeviceGraph } from "./graphGpu.js";

/** Colours per round while many nodes move (simultaneous moves of neighbours are likely) … */
const LM_MANY_COLOURS = 32;
/** … and once a round moves fewer than n/LM_FEW_MOVES nodes (fewer dispatches per round). */
const LM_FEW_COLOURS = 8;
const LM_FEW_MOVES = 100;
// Measured on kang2018_ctrl_5donors / pbmc3k: 4 colours throughout merges clusters (Q 1 % below
// leidenCpu's on some seeds); 16–32 colours while most nodes move give leidenCpu's quality.
const LM_ROUNDS_PER_BATCH = 4;
const LM_MAX_ROUNDS = 200;

/** Whether a graph with n nodes and this many arcs fits the device's binding limit. */
export function fitsLocalMovingGpu(gpu: Gpu, g: { n: number; indices: { length: number } }): boolean {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  return g.indices.length * 8 <= limit && 12 * g.n <= limit;
}

/** Rounds run so far, shared by every level of a run: keeps colourings distinct across levels, iterations, passes and starts. */
export interface RoundCounter {
  rounds: number;
}

/** A partition of one DeviceGraph's nodes on the device, with its community totals, moved by colour rounds. */
export class GpuLocalMoving {
  private constructor(
    private readonly gpu: Gpu,
    readonly graph: DeviceGraph,
    private readonly ownsGraph: boolean,
    private readonly pipes: { move: GPUComputePipeline; refine: GPUComputePipeline; apply: GPUComputePipeline },
    /** memb: community of each node; comm: (K lo, K hi, count) per community id, valid after every round. */
    readonly buffers: { memb: GPUBuffer; choice: GPUBuffer; comm: GPUBuffer; moves: GPUBuffer },
    private readonly consts: { gamma: number; invTw: number; seed: number },
    private readonly label: string,
    private readonly counter: RoundCounter,
  ) {}

  /** Uploads `g` (owned, freed by destroy). `label` names the caller (leiden, louvain) in buffer labels and errors. */
  static async create(gpu: Gpu, g: WGraph, gamma: number, tw: number, seed: number, label: string): Promise<GpuLocalMoving> {
    if (!fitsLocalMovingGpu(gpu, g)) {
      const limit = gpu.limits.maxStorageBufferBindingSize;
      throw new GpuError(`${label}Gpu: graph with ${g.n} nodes and ${g.indices.length} arcs exceeds the ${limit}-byte binding limit`);
    }
    return GpuLocalMoving.onGraph(gpu, uploadGraph(gpu, g, label), gamma, tw, seed, label, { rounds: 0 }, true);
  }

  /** A partition of a graph already on the device (not freed by destroy unless ownsGraph). */
  static async onGraph(gpu: Gpu, g: DeviceGraph, gamma: number, tw: number, seed: number, label: string, counter: RoundCounter, ownsGraph = false): Promise<GpuLocalMoving> {
    const code = (await import("../../kernels/louvain.wgsl")).default;
    const [move, refine, apply] = await Promise.all([gpu.pipeline(code, "choose_move"), gpu.pipeline(code, "choose_refine"), gpu.pipeline(code, "apply_totals")]);
    const n = g.n;
    const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const buffers = {
      memb: gpu.createBuffer(4 * n, rw, `${label}.memb`),
      choice: gpu.createBuffer(4 * n, rw, `${label}.choice`),
      comm: gpu.createBuffer(12 * n, rw, `${label}.comm`),
      moves: gpu.createBuffer(4 * (LM_ROUNDS_PER_BATCH + 1), rw, `${label}.moves`),
    };
    return new GpuLocalMoving(gpu, g, ownsGraph, { move, refine, apply }, buffers, { gamma, invTw: 1 / tw, seed: seed >>> 0 }, label, counter);
  }

  /** Local moving from membership m (ids < n), updated in place. */
  async run(m: Int32Array): Promise<void> {
    // Int32 ids < n have the same bytes as u32.
    this.gpu.device.queue.writeBuffer(this.buffers.memb, 0, m.buffer as ArrayBuffer, m.byteOffset, m.byteLength);
    await this.moveNodes();
    m.set(new Int32Array(await this.gpu.readback(this.buffers.memb, 4 * this.graph.n)));
  }

  /** Local moving from the membership in buffers.memb. */
  async moveNodes(): Promise<void> {
    await this.rounds(this.pipes.move, undefined);
  }

  /**
   * Leiden's refinement: from singletons, nodes still alone join the best sub-community of their
   * community in `part` (a membership of the same graph) while that gains; buffers.memb receives
   * the refined membership (ids < n, not compact).
   */
  async refine(part: GPUBuffer): Promise<void> {
    const n = this.graph.n;
    this.gpu.device.queue.writeBuffer(this.buffers.memb, 0, Uint32Array.from({ length: n }, (_, i) => i));
    await this.rounds(this.pipes.refine, part);
  }

  /** Colour rounds of `choose` + apply_totals until a round moves nothing or LM_MAX_ROUNDS. */
  private async rounds(choose: GPUComputePipeline, part: GPUBuffer | undefined): Promise<void> {
    const { gpu, buffers: b, consts: c, graph: g } = this;
    const n = g.n;
    if (n === 0) return;
    const wg = Math.ceil(n / 64);
    let colours = LM_MANY_COLOURS;
    const params = (colour: number, round: number, slot: number) =>
      gpu.uniforms({ u32: [n, colour, colours, c.seed, round, slot, 0, 0], f32: [c.gamma, c.invTw, 1 / g.S, 0] }, `${this.label}.params`);
    const applyStep = (p: GPUBuffer): Step => ({ pipeline: this.pipes.apply, bindings: [p, undefined, undefined, undefined, g.kq, b.memb, b.choice, b.comm, b.moves], workgroups: wg });
    // Totals of the starting partition (choice = memb: nothing moves).
    const init = params(0, 0, LM_ROUNDS_PER_BATCH);
    try {
      await gpu.run(`${this.label}.init`, [{ copy: { src: b.memb, srcOffset: 0, dst: b.choice, dstOffset: 0, size: 4 * n } }, { clear: b.comm }, { clear: b.moves }, applyStep(init)]);
    } finally {
      init.destroy();
    }
    for (let done = 0; done < LM_MAX_ROUNDS; done += LM_ROUNDS_PER_BATCH) {
      const steps: Step[] = [{ clear: b.moves }];
      const uniforms: GPUBuffer[] = [];
      for (let r = 0; r < LM_ROUNDS_PER_BATCH; r++) {
        for (let colour = 0; colour < colours; colour++) {
          const p = params(colour, this.counter.rounds + r, r);
          uniforms.push(p);
          steps.push(
            { pipeline: choose, bindings: [p, g.indptr, g.indices, g.weights, g.kq, b.memb, b.choice, b.comm, undefined, part], workgroups: wg },
            { clear: b.comm },
            applyStep(p),
          );
        }
      }
      let moves: Uint32Array;
      try {
        await gpu.run(`${this.label}.rounds`, steps);
        moves = new Uint32Array(await gpu.readback(b.moves, 4 * LM_ROUNDS_PER_BATCH));
      } finally {
        for (const u of uniforms) u.destroy();
      }
      this.counter.rounds += LM_ROUNDS_PER_BATCH;
      // A round without moves is a fixed point: later rounds of the batch changed nothing either.
      if (moves.includes(0)) break;
      if (moves[LM_ROUNDS_PER_BATCH - 1] * LM_FEW_MOVES < n) colours = LM_FEW_COLOURS;
    }
  }

  destroy(): void {
    for (const buf of Object.values(this.buffers)) buf.destroy();
    if (this.ownsGraph) destroyGraph(this.graph);
  }
}
