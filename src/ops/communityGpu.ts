/**
 * The device side of Leiden and Louvain (leidenGpu, louvainGpu):
 * - GpuLocalMoving: local moving and Leiden's refinement (kernels/louvain.wgsl) — colour rounds
 *   in which every node of one colour picks its best move against the community strengths at
 *   the round's start, then the strengths are re-summed as exact 64-bit fixed-point integers
 *   (order-free, so bit-identical run to run);
 * - DeviceLevels: the level loop — move, compact ids, (refine,) contract the graph
 *   (graphGpu.ts), repeat — with the graph and the partitions on the device throughout (a level
 *   too large for the contraction's hash tables is contracted on the host, same bytes).
 */
import { GpuError, type Gpu, type Step } from "../gpu/device.js";
import { exclusiveScanU32Steps } from "../gpu/scan.js";
import type { WGraph } from "./communityCommon.js";
import { contractGraphGpu, contractGraphHost, destroyGraph, fitsContractGpu, uploadGraph, type DeviceGraph } from "./graphGpu.js";

/** Colours per round while many nodes move (simultaneous moves of neighbours are likely) … */
const LM_MANY_COLOURS = 32;
/** … and once a round moves fewer than n/LM_FEW_MOVES nodes (fewer dispatches per round). */
const LM_FEW_COLOURS = 8;
const LM_FEW_MOVES = 100;
// Measured on kang2018_ctrl_5donors / pbmc3k: 4 colours throughout merges clusters (Q 1 % below
// leidenCpu's on some seeds); 16–32 colours while most nodes move give leidenCpu's quality.
const LM_ROUNDS_PER_BATCH = 4;
/**
 * Graphs (levels) of at most this many nodes run a whole batch in one single-workgroup dispatch
 * (batch_move / batch_refine, bit-identical to the dispatch-per-phase path): coarse levels have
 * little parallelism, and 3 dispatches per colour per round cost more than the work. Kept low
 * because one workgroup runs on one SM of a real GPU's ~100 (on lavapipe, one core): at 3k points
 * lavapipe ran Leiden in 1.85 s with the limit at 4,096 (every level in one workgroup) and 2.39 s
 * at 1,024, Louvain in 2.2 s either way; a device run (`bench graph --profile`) should set it.
 */
export const SMALL_LEVEL = 1024;
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
class GpuLocalMoving {
  private constructor(
    private readonly gpu: Gpu,
    readonly graph: DeviceGraph,
    private readonly pipes: { move: GPUComputePipeline; refine: GPUComputePipeline; apply: GPUComputePipeline; batchMove: GPUComputePipeline; batchRefine: GPUComputePipeline },
    /** memb: community of each node; comm: (K lo, K hi, count) per community id, valid after every round. */
    readonly buffers: { memb: GPUBuffer; choice: GPUBuffer; comm: GPUBuffer; moves: GPUBuffer },
    private readonly consts: { gamma: number; invTw: number; seed: number },
    private readonly label: string,
    private readonly counter: RoundCounter,
    private readonly smallLevel: number,
  ) {}

  /** A partition of a graph on the device (the graph stays the caller's). `label` names the caller in buffer labels and errors. */
  static async onGraph(gpu: Gpu, g: DeviceGraph, gamma: number, tw: number, seed: number, label: string, counter: RoundCounter, smallLevel = SMALL_LEVEL): Promise<GpuLocalMoving> {
    const code = (await import("../../kernels/louvain.wgsl")).default;
    const [move, refine, apply, batchMove, batchRefine] = await Promise.all(
      ["choose_move", "choose_refine", "apply_totals", "batch_move", "batch_refine"].map((e) => gpu.pipeline(code, e)),
    );
    const n = g.n;
    const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const buffers = {
      memb: gpu.createBuffer(4 * n, rw, `${label}.memb`),
      choice: gpu.createBuffer(4 * n, rw, `${label}.choice`),
      // 3 words per community, then the single-workgroup batch's 4 move counts
      comm: gpu.createBuffer(12 * n + 16, rw, `${label}.comm`),
      moves: gpu.createBuffer(4 * (LM_ROUNDS_PER_BATCH + 1), rw, `${label}.moves`),
    };
    return new GpuLocalMoving(gpu, g, { move, refine, apply, batchMove, batchRefine }, buffers, { gamma, invTw: 1 / tw, seed: seed >>> 0 }, label, counter, smallLevel);
  }

  /** Local moving from the membership in buffers.memb. */
  async moveNodes(): Promise<void> {
    await this.rounds(this.pipes.move, this.pipes.batchMove, undefined);
  }

  /**
   * Leiden's refinement: from singletons, nodes still alone join the best sub-community of their
   * community in `part` (a membership of the same graph) while that gains; buffers.memb receives
   * the refined membership (ids < n, not compact).
   */
  async refine(part: GPUBuffer): Promise<void> {
    const n = this.graph.n;
    this.gpu.device.queue.writeBuffer(this.buffers.memb, 0, Uint32Array.from({ length: n }, (_, i) => i));
    await this.rounds(this.pipes.refine, this.pipes.batchRefine, part);
  }

  /**
   * Colour rounds of `choose` + apply_totals until a round moves nothing or LM_MAX_ROUNDS; a small
   * graph runs each batch as one dispatch of `batch` instead.
   */
  private async rounds(choose: GPUComputePipeline, batch: GPUComputePipeline, part: GPUBuffer | undefined): Promise<void> {
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
    const small = n <= this.smallLevel;
    for (let done = 0; done < LM_MAX_ROUNDS; done += LM_ROUNDS_PER_BATCH) {
      const steps: Step[] = [{ clear: b.moves }];
      const uniforms: GPUBuffer[] = [];
      if (small) {
        const p = params(0, this.counter.rounds, 0);
        uniforms.push(p);
        steps.push(
          // batch_move reaches the refinement's code too, so its layout has `part`: any read-only buffer (never read).
          { pipeline: batch, bindings: [p, g.indptr, g.indices, g.weights, g.kq, b.memb, b.choice, b.comm, undefined, part ?? g.indices], workgroups: 1 },
          { copy: { src: b.comm, srcOffset: 12 * n, dst: b.moves, dstOffset: 0, size: 4 * LM_ROUNDS_PER_BATCH } },
        );
      }
      for (let r = 0; r < (small ? 0 : LM_ROUNDS_PER_BATCH); r++) {
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
  }
}

/**
 * The level loop on the device, the graph uploaded once. One call of optimise() is one pass:
 * - Leiden (refine = true; leidenalg's Optimiser::optimise_partition): local moving, the
 *   refinement of each community, aggregation by the refined partition with each aggregate node
 *   starting in its members' community; until aggregation no longer shrinks the graph;
 * - Louvain (refine = false; ModularityOptimizer's runLouvainAlgorithm): local moving, then
 *   aggregation by the communities with the aggregate nodes as singletons; until local moving
 *   merges nothing.
 * Only counts come back between levels, and the partition of the input nodes at the end.
 */
export class DeviceLevels {
  private readonly counter: RoundCounter = { rounds: 0 };
  private constructor(
    private readonly gpu: Gpu,
    private readonly g0: DeviceGraph,
    private readonly gamma: number,
    private readonly tw: number,
    private readonly seed: number,
    private readonly label: string,
    private readonly ops: IndexOps,
    private readonly smallLevel: number,
  ) {}

  /**
   * Uploads g0 (freed by destroy); `label` names the caller in buffer labels and errors. Levels of
   * at most `smallLevel` nodes run their colour batches as single-workgroup dispatches (same bytes).
   */
  static async create(gpu: Gpu, g0: WGraph, gamma: number, tw: number, seed: number, label: string, smallLevel = SMALL_LEVEL): Promise<DeviceLevels> {
    if (!fitsLocalMovingGpu(gpu, g0)) {
      throw new GpuError(`${label}Gpu: graph with ${g0.n} nodes and ${g0.indices.length} arcs exceeds the ${gpu.limits.maxStorageBufferBindingSize}-byte binding limit`);
    }
    const ops = await IndexOps.create(gpu, label);
    return new DeviceLevels(gpu, uploadGraph(gpu, g0, label), gamma, tw, seed >>> 0, label, ops, smallLevel);
  }

  /** One pass from `start` (a membership of the input nodes, ids < n); returns the partition reached (ids < n). */
  async optimise(start: Int32Array, refine: boolean): Promise<Int32Array> {
    const { gpu, g0, ops, label } = this;
    const n0 = g0.n;
    const temps: GPUBuffer[] = [];
    const keep = (b: GPUBuffer) => (temps.push(b), b);
    const level = (g: DeviceGraph, what: string) => GpuLocalMoving.onGraph(gpu, g, this.gamma, this.tw, this.seed, `${label}.${what}`, this.counter, this.smallLevel);
    let g = g0;
    let lm = await level(g, "move");
    let rf: GpuLocalMoving | undefined;
    gpu.device.queue.writeBuffer(lm.buffers.memb, 0, start.buffer as ArrayBuffer, start.byteOffset, start.byteLength);
    // aggNode: the current level's node of each input node; memb0: the partition of the input nodes.
    let aggNode = keep(gpu.upload(Uint32Array.from({ length: n0 }, (_, i) => i), `${label}.aggNode`, ops.usage));
    let memb0: GPUBuffer | undefined;
    try {
      for (;;) {
        await lm.moveNodes();
        const { ids: mc, count: nComm } = await ops.compact(lm, keep);
        memb0 = keep(await ops.gather(aggNode, mc, n0));
        let lab = mc;
        let nNext = nComm;
        if (refine) {
          rf = await level(g, "refine");
          await rf.refine(mc);
          ({ ids: lab, count: nNext } = await ops.compact(rf, keep));
          rf.destroy();
          rf = undefined;
          if (!(nNext < g.n && g.n > nComm)) break;
        } else if (!(nComm < g.n && nComm > 1)) break;
        aggNode = keep(await ops.gather(aggNode, lab, n0));
        // A level whose hash tables pass the binding limit (an SNN graph's first, typically) contracts on the host, with the same bytes.
        const next = await (fitsContractGpu(gpu, g) ? contractGraphGpu : contractGraphHost)(gpu, g, lab, nNext, label);
        // Leiden: each aggregate node starts in the (unrefined) community of its members;
        // Louvain: as a singleton.
        const nextM = refine ? keep(await ops.scatter(lab, mc, g.n, nNext)) : undefined;
        lm.destroy();
        if (g !== g0) destroyGraph(g);
        g = next;
        lm = await level(g, "move");
        if (nextM) await gpu.run(`${label}.start`, [{ copy: { src: nextM, srcOffset: 0, dst: lm.buffers.memb, dstOffset: 0, size: 4 * g.n } }]);
        else gpu.device.queue.writeBuffer(lm.buffers.memb, 0, Uint32Array.from({ length: g.n }, (_, i) => i));
      }
      return new Int32Array(await gpu.readback(memb0, 4 * n0));
    } finally {
      rf?.destroy();
      lm.destroy();
      if (g !== g0) destroyGraph(g);
      for (const b of temps) b.destroy();
    }
  }

  destroy(): void {
    destroyGraph(this.g0);
  }
}

/** The id maps of kernels/relabel.wgsl: compaction of used ids, gather, scatter. */
class IndexOps {
  readonly usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  private constructor(
    private readonly gpu: Gpu,
    private readonly pipes: { used: GPUComputePipeline; gather: GPUComputePipeline; scatter: GPUComputePipeline },
    private readonly label: string,
  ) {}

  static async create(gpu: Gpu, label: string): Promise<IndexOps> {
    const code = (await import("../../kernels/relabel.wgsl")).default;
    const [used, gather, scatter] = await Promise.all(["used_flags", "gather", "scatter"].map((e) => gpu.pipeline(code, e)));
    return new IndexOps(gpu, { used, gather, scatter }, label);
  }

  /** One dispatch of a relabel.wgsl entry over n elements, with its uniform block (caller destroys it). */
  private step(what: string, pipeline: GPUComputePipeline, n: number, bindings: (GPUBuffer | undefined)[], stride = 0, offset = 0): { step: Step; params: GPUBuffer } {
    const params = this.gpu.uniforms({ u32: [n, stride, offset, 0] }, `${this.label}.${what}.params`);
    return { step: { pipeline, bindings: [params, ...bindings], workgroups: Math.ceil(n / 64) }, params };
  }

  private async dispatch(what: string, pipeline: GPUComputePipeline, n: number, bindings: (GPUBuffer | undefined)[]): Promise<void> {
    if (n === 0) return;
    const { step, params } = this.step(what, pipeline, n, bindings);
    try {
      await this.gpu.run(`${this.label}.${what}`, [step]);
    } finally {
      params.destroy();
    }
  }

  /**
   * The partition's community ids renumbered 0..count-1 in id order (a node's id in `ids`): used
   * flags, their prefix sum, the gather — one submission, the count read back.
   */
  async compact(lm: GpuLocalMoving, keep: (b: GPUBuffer) => GPUBuffer): Promise<{ ids: GPUBuffer; count: number }> {
    const { gpu, label, pipes } = this;
    const n = lm.graph.n;
    const flags = keep(gpu.createBuffer(4 * n, this.usage, `${label}.used`));
    const ids = keep(gpu.createBuffer(4 * n, this.usage, `${label}.ids`));
    const scan = await exclusiveScanU32Steps(gpu, flags, n, `${label}.newId`);
    keep(scan.out);
    const total = gpu.createBuffer(4, GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, `${label}.count`);
    const used = this.step("used", pipes.used, n, [lm.buffers.comm, undefined, undefined, undefined, flags], 3, 2);
    const gather = this.step("gather", pipes.gather, n, [undefined, lm.buffers.memb, scan.out, undefined, ids]);
    try {
      await gpu.run(`${label}.compact`, [used.step, ...scan.steps, gather.step, { copy: { src: scan.out, srcOffset: 4 * n, dst: total, dstOffset: 0, size: 4 } }]);
      return { ids, count: new Uint32Array(await gpu.readback(total, 4))[0] };
    } finally {
      for (const b of [total, used.params, gather.params, ...scan.temps]) b.destroy();
    }
  }

  /** out[i] = table[idx[i]] for i < n. */
  async gather(idx: GPUBuffer, table: GPUBuffer, n: number): Promise<GPUBuffer> {
    const out = this.gpu.createBuffer(4 * n, this.usage, `${this.label}.gather`);
    await this.dispatch("gather", this.pipes.gather, n, [undefined, idx, table, undefined, out]);
    return out;
  }

  /** out[idx[i]] = table[i] for i < n; out has nOut entries, each written. */
  async scatter(idx: GPUBuffer, table: GPUBuffer, n: number, nOut: number): Promise<GPUBuffer> {
    const out = this.gpu.createBuffer(4 * nOut, this.usage, `${this.label}.scatter`);
    await this.dispatch("scatter", this.pipes.scatter, n, [undefined, idx, table, undefined, out]);
    return out;
  }
}
