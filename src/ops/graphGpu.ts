/**
 * A weighted symmetric graph resident on the device and its contraction by a node labelling
 * (kernels/contract.wgsl): the aggregation step of Leiden/Louvain (communityCommon.ts
 * aggregateGraph) without leaving the device. Weights are exact 64-bit fixed point (w·S as
 * (lo, hi) u32 pairs), summed with integer atomics, so sums do not depend on the order the
 * threads run in; coarse rows come out sorted by neighbour id, so the result is bit-identical run
 * to run. Differs from aggregateGraph deliberately: neighbours in increasing id order (not
 * first-seen order), weights quantized to 1/S, and arcs inside a label go to the strength kq
 * only (a DeviceGraph has no separate self weight: it is kq − Σ row wq).
 */
import { GpuError, type Gpu, type Step } from "../gpu/device.js";
import { exclusiveScanU32Steps } from "../gpu/scan.js";
import { aggregateGraph, type WGraph } from "./communityCommon.js";

/**
 * Symmetric weighted graph on the device, self loops out of the adjacency (as WGraph). Weights
 * in exact 64-bit fixed point (value·S as (lo, hi) u32 pairs) so that sums are order-free and
 * bit-identical run to run; f32 copies of the arc weights for the gain computations.
 */
export interface DeviceGraph {
  n: number;
  nArcs: number;
  /** Fixed-point scale, a power of two. */
  S: number;
  /** u32 × (n+1). */
  indptr: GPUBuffer;
  /** u32 × nArcs, each row sorted by increasing neighbour id. */
  indices: GPUBuffer;
  /** u32 × 2·nArcs: arc weight·S, (lo, hi). */
  wq: GPUBuffer;
  /** f32 × nArcs: (f32(hi)·2^32 + f32(lo)) / S. */
  weights: GPUBuffer;
  /** u32 × 2·n: node strength·S (self loop included), (lo, hi). */
  kq: GPUBuffer;
}

// A function: GPUBufferUsage exists only once a device has been acquired (Node).
const rw = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const TWO32 = 2 ** 32;

/**
 * S = 2^e, the largest e ≤ 24 with round(maxArcWeight·S) < 2^31 (a fine arc fits in lo alone)
 * and (total strength)·S < 2^52 (every sum of weights stays an exact double on the host).
 */
export function fixedPointScale(g: WGraph): number {
  let maxW = 0;
  let total = 0;
  for (let k = 0; k < g.weights.length; k++) {
    const w = g.weights[k];
    if (!(w >= 0 && w < Infinity)) throw new Error(`graphGpu: arc weight ${w} is not a finite non-negative number`);
    maxW = Math.max(maxW, w);
    total += w;
  }
  for (let v = 0; v < g.n; v++) {
    const w = g.selfWeight[v];
    if (!(w >= 0 && w < Infinity)) throw new Error(`graphGpu: self-loop weight ${w} is not a finite non-negative number`);
    total += w;
  }
  let e = 24;
  while (Math.round(maxW * 2 ** e) >= 2 ** 31 || total * 2 ** e >= 2 ** 52) e--;
  return 2 ** e;
}

/** f32 weight of a fixed-point (lo, hi) pair, rounded as contract.wgsl's emit rounds it. */
function f32Weight(lo: number, hi: number, invS: number): number {
  // Every step is one f32 rounding of an f64 result; f64 has > 2·24+2 bits, so rounding twice
  // (exact → f64 → f32) equals rounding once, as the device's f32 arithmetic does.
  return Math.fround(Math.fround(Math.fround(hi) * TWO32 + Math.fround(lo)) * invS);
}

/**
 * Uploads g with wq[arc] = round(w·S) and kq[v] = Σ_row wq + round(selfWeight[v]·S) (an exact
 * integer, so Σ kq is consistent with the arcs); rows sorted by neighbour id.
 */
export function uploadGraph(gpu: Gpu, g: WGraph, label: string): DeviceGraph {
  const n = g.n;
  const nArcs = g.indices.length;
  const S = fixedPointScale(g);
  const invS = 1 / S;
  const indices = new Uint32Array(nArcs);
  const wq = new Uint32Array(2 * nArcs);
  const weights = new Float32Array(nArcs);
  const kq = new Uint32Array(2 * n);
  const order: number[] = [];
  for (let v = 0; v < n; v++) {
    const start = g.indptr[v];
    const end = g.indptr[v + 1];
    order.length = 0;
    let sorted = true;
    for (let k = start; k < end; k++) {
      order.push(k);
      if (k > start && g.indices[k] < g.indices[k - 1]) sorted = false;
    }
    // Rows of a CSR built by column usually come sorted already; sorting is the exception.
    if (!sorted) order.sort((x, y) => g.indices[x] - g.indices[y]);
    let kv = Math.round(g.selfWeight[v] * S);
    for (let i = 0; i < order.length; i++) {
      const k = order[i];
      const o = start + i;
      const q = Math.round(g.weights[k] * S);
      indices[o] = g.indices[k];
      wq[2 * o] = q;
      weights[o] = f32Weight(q, 0, invS);
      kv += q;
    }
    setPair(kq, v, kv);
  }
  return {
    n,
    nArcs,
    S,
    indptr: gpu.upload(Uint32Array.from(g.indptr), `${label}.indptr`, rw()),
    indices: gpu.upload(indices, `${label}.indices`, rw()),
    wq: gpu.upload(wq, `${label}.wq`, rw()),
    weights: gpu.upload(weights, `${label}.weights`, rw()),
    kq: gpu.upload(kq, `${label}.kq`, rw()),
  };
}

/**
 * Whether contracting g fits maxStorageBufferBindingSize: the hash tables take up to 2 slots of
 * 3 u32 per arc, their fill flags and offsets one u32 per slot, the coarse arcs 8 bytes each.
 */
export function fitsContractGpu(gpu: Gpu, g: DeviceGraph): boolean {
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const slots = 2 * g.nArcs;
  return 12 * slots <= limit && 4 * (slots + 1) <= limit && 8 * g.nArcs <= limit && 8 * (g.n + 1) <= limit;
}

/**
 * Contracts g by `labels` (u32 × g.n, values 0..nLabels−1, every value used): one node per
 * label; kq summed over members; arcs between labels summed (exact 64-bit sums); arcs inside a
 * label dropped (they are already in kq); each coarse row sorted by neighbour id; weights f32
 * recomputed from wq. g and labels are left as they were.
 */
export async function contractGraphGpu(gpu: Gpu, g: DeviceGraph, labels: GPUBuffer, nLabels: number, label: string): Promise<DeviceGraph> {
  const N = nLabels;
  if (!Number.isInteger(N) || N < 0 || (N === 0 && g.n > 0) || N > g.n) {
    throw new GpuError(`${label}: ${N} labels for ${g.n} nodes`);
  }
  if (!fitsContractGpu(gpu, g)) {
    throw new GpuError(`${label}: contracting ${g.n} nodes and ${g.nArcs} arcs exceeds the ${gpu.limits.maxStorageBufferBindingSize}-byte binding limit`);
  }
  const code = (await import("../../kernels/contract.wgsl")).default;
  const names = ["caps", "table_sizes", "insert", "mark", "compact", "emit"] as const;
  const [caps, tableSizes, insert, mark, compact, emit] = await Promise.all(names.map((e) => gpu.pipeline(code, e)));
  const temps: GPUBuffer[] = [];
  const buf = (bytes: number, name: string, usage = rw()): GPUBuffer => {
    const b = gpu.createBuffer(bytes, usage, `${label}.${name}`);
    temps.push(b);
    return b;
  };
  const params = (T: number): GPUBuffer => {
    const p = gpu.uniforms({ u32: [g.n, N, g.nArcs, T], f32: [1 / g.S] }, `${label}.params`);
    temps.push(p);
    return p;
  };
  // Counts the host needs to size the next buffers, copied here at the end of a submission.
  const totals = buf(8, "totals", GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
  const copyTo = (src: GPUBuffer, index: number, slot: number): Step => ({ copy: { src, srcOffset: 4 * index, dst: totals, dstOffset: 4 * slot, size: 4 } });
  const readTotals = async (): Promise<Uint32Array> => new Uint32Array(await gpu.readback(totals, 8));
  const wg256 = (count: number) => Math.ceil(count / 256);
  const ckq = gpu.createBuffer(8 * N, rw(), `${label}.kq`);
  const out: GPUBuffer[] = [ckq];
  try {
    // 1. Capacities, coarse strengths, table sizes and offsets; T = total slots.
    const cap = buf(4 * N, "cap");
    const bad = buf(4, "bad");
    const tsize = buf(4 * N, "tsize");
    const p0 = params(0);
    const sizes = await exclusiveScanU32Steps(gpu, tsize, N, `${label}.toff`);
    temps.push(sizes.out, ...sizes.temps);
    const toff = sizes.out;
    await gpu.run(`${label}.caps`, [
      { clear: cap },
      { clear: ckq },
      { clear: bad },
      { pipeline: caps, bindings: [p0, g.indptr, undefined, undefined, g.kq, labels, cap, ckq, bad], workgroups: wg256(g.n) },
      { pipeline: tableSizes, bindings: [p0, undefined, undefined, undefined, undefined, undefined, cap, undefined, undefined, tsize], workgroups: wg256(N) },
      ...sizes.steps,
      copyTo(toff, N, 0),
      copyTo(bad, 0, 1),
    ]);
    const [T, nBad] = await readTotals();
    if (nBad > 0) throw new GpuError(`${label}: ${nBad} labels are not below nLabels = ${N}`);

    // 2. Hash tables filled with the arcs between labels; filled slots counted and compacted.
    const table = buf(12 * T, "table");
    const flags = buf(4 * T, "flags");
    const p1 = params(T);
    const filled = await exclusiveScanU32Steps(gpu, flags, T, `${label}.fpos`);
    temps.push(filled.out, ...filled.temps);
    const fpos = filled.out;
    const tableBindings = (extra: (GPUBuffer | undefined)[]) => [p1, ...new Array<undefined>(10), ...extra];
    await gpu.run(`${label}.insert`, [
      { clear: table },
      {
        pipeline: insert,
        bindings: [p1, g.indptr, g.indices, g.wq, undefined, labels, undefined, undefined, undefined, undefined, toff, table],
        workgroups: wg256(g.nArcs),
      },
      { pipeline: mark, bindings: tableBindings([table, flags]), workgroups: wg256(T) },
      ...filled.steps,
      copyTo(fpos, T, 0),
    ]);
    const nArcs = (await readTotals())[0];

    // 3. Coarse CSR: entries compacted in row order, then each placed by its rank in its row.
    const tmp = buf(12 * nArcs, "tmp");
    const cindptr = gpu.createBuffer(4 * (N + 1), rw(), `${label}.indptr`);
    const cindices = gpu.createBuffer(4 * nArcs, rw(), `${label}.indices`);
    const cwq = gpu.createBuffer(8 * nArcs, rw(), `${label}.wq`);
    const cweights = gpu.createBuffer(4 * nArcs, rw(), `${label}.weights`);
    out.push(cindptr, cindices, cwq, cweights);
    const steps: Step[] = [
      { pipeline: compact, bindings: tableBindings([table, undefined, fpos, tmp]), workgroups: wg256(T) },
      {
        pipeline: emit,
        bindings: [p1, ...new Array<undefined>(9), toff, undefined, undefined, fpos, tmp, cindptr, cindices, cwq, cweights],
        workgroups: N,
      },
    ];
    // With no coarse node, emit writes nothing: indptr = [0].
    if (N === 0) steps.push({ clear: cindptr });
    await gpu.run(`${label}.emit`, steps);
    return { n: N, nArcs, S: g.S, indptr: cindptr, indices: cindices, wq: cwq, weights: cweights, kq: ckq };
  } catch (e) {
    for (const b of out) b.destroy();
    throw e;
  } finally {
    for (const b of temps) b.destroy();
  }
}

/**
 * contractGraphGpu's result computed on the host — the graph and labels read back, contracted in
 * exact fixed point, uploaded — for a graph whose hash tables would not fit the binding limit
 * (fitsContractGpu false; later, smaller levels contract on the device again). Same bytes as
 * contractGraphGpu. `labels` needs COPY_SRC usage.
 */
export async function contractGraphHost(gpu: Gpu, g: DeviceGraph, labels: GPUBuffer, nLabels: number, label: string): Promise<DeviceGraph> {
  const h = await readGraph(gpu, g);
  const lab = new Int32Array(await gpu.readback(labels, 4 * g.n));
  for (let v = 0; v < g.n; v++) {
    if (lab[v] < 0 || lab[v] >= nLabels) throw new GpuError(`${label}: node ${v} has label ${lab[v] >>> 0}, expected < ${nLabels}`);
  }
  // aggregateGraph on the fixed-point values: integers below 2^52, so its float64 sums are exact
  // in any order; intra-label arcs go to its self weight, already counted in the strengths kq.
  const fixed: WGraph = {
    n: g.n,
    indptr: Int32Array.from(h.indptr),
    indices: new Int32Array(h.indices.buffer, h.indices.byteOffset, h.indices.length),
    weights: h.wq,
    nodeWeight: h.kq,
    selfWeight: new Float64Array(g.n),
  };
  const agg = aggregateGraph(fixed, lab, nLabels);
  const nArcs = agg.indices.length;
  // Rows in increasing neighbour id, as the device emits them (aggregateGraph lists first-seen order).
  const indices = new Uint32Array(nArcs);
  const wq = new Uint32Array(2 * nArcs);
  const weights = new Float32Array(nArcs);
  const invS = 1 / g.S;
  for (let c = 0; c < nLabels; c++) {
    const row = Array.from({ length: agg.indptr[c + 1] - agg.indptr[c] }, (_, i) => agg.indptr[c] + i).sort((a, b) => agg.indices[a] - agg.indices[b]);
    row.forEach((k, i) => {
      const o = agg.indptr[c] + i;
      indices[o] = agg.indices[k];
      setPair(wq, o, agg.weights[k]);
      weights[o] = f32Weight(wq[2 * o], wq[2 * o + 1], invS);
    });
  }
  const kq = new Uint32Array(2 * nLabels);
  for (let c = 0; c < nLabels; c++) setPair(kq, c, agg.nodeWeight[c]);
  return {
    n: nLabels,
    nArcs,
    S: g.S,
    indptr: gpu.upload(Uint32Array.from(agg.indptr), `${label}.indptr`, rw()),
    indices: gpu.upload(indices, `${label}.indices`, rw()),
    wq: gpu.upload(wq, `${label}.wq`, rw()),
    weights: gpu.upload(weights, `${label}.weights`, rw()),
    kq: gpu.upload(kq, `${label}.kq`, rw()),
  };
}

/** out[2i], out[2i+1] = the (lo, hi) words of the exact integer x < 2^64. */
function setPair(out: Uint32Array, i: number, x: number): void {
  const hi = Math.floor(x / TWO32);
  out[2 * i] = x - hi * TWO32;
  out[2 * i + 1] = hi;
}

export function destroyGraph(g: DeviceGraph): void {
  for (const b of [g.indptr, g.indices, g.wq, g.weights, g.kq]) b.destroy();
}

/** The graph back on the host, (lo, hi) pairs as exact numbers; for tests and host fallbacks. */
export async function readGraph(
  gpu: Gpu,
  g: DeviceGraph,
): Promise<{ indptr: Uint32Array; indices: Uint32Array; wq: Float64Array; weights: Float32Array; kq: Float64Array }> {
  const [indptr, indices, wq, weights, kq] = await gpu.readbackAll([
    { buffer: g.indptr, byteLength: 4 * (g.n + 1) },
    { buffer: g.indices, byteLength: 4 * g.nArcs },
    { buffer: g.wq, byteLength: 8 * g.nArcs },
    { buffer: g.weights, byteLength: 4 * g.nArcs },
    { buffer: g.kq, byteLength: 8 * g.n },
  ]);
  const pairs = (b: ArrayBuffer): Float64Array => {
    const u = new Uint32Array(b);
    return Float64Array.from({ length: u.length / 2 }, (_, i) => u[2 * i] + u[2 * i + 1] * TWO32);
  };
  return {
    indptr: new Uint32Array(indptr),
    indices: new Uint32Array(indices),
    wq: pairs(wq),
    weights: new Float32Array(weights),
    kq: pairs(kq),
  };
}
