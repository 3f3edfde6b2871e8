/**
 * Leiden community detection (Traag, Waltman & van Eck 2019) maximising modularity with a
 * resolution γ on a weighted graph, as scanpy.tl.leiden runs it: leidenalg's
 * RBConfigurationVertexPartition optimised by leidenalg's Optimiser with its defaults
 * (leidenalg 0.9.x, src/Optimiser.cpp):
 *  - fast local moving: a queue of nodes in random order; each node goes to the neighbouring
 *    community (or an empty one) with the largest gain if that gain exceeds 10·DBL_EPSILON; the
 *    neighbours it left behind re-enter the queue;
 *  - refinement: merge_nodes_constrained, leidenalg's greedy variant (not the θ-randomised
 *    choice of the paper; leidenalg has none): starting from singletons, in random order each
 *    still-singleton node joins the sub-community within its community with the largest gain,
 *    if that gain is >= 0;
 *  - aggregation on the refined partition, the unrefined partition as initial membership, until
 *    aggregation no longer shrinks the graph; with nIterations = -1 (scanpy's default) the whole
 *    procedure repeats from the last partition until an iteration improves nothing.
 * scanpy hands leidenalg a *directed* igraph holding both directions of the symmetric
 * connectivities; directed RB-configuration modularity on such a graph equals the undirected
 * modularity of the symmetric graph, and the gains below are written in leidenalg's directed
 * scale (twice the undirected gain) so the 10·DBL_EPSILON threshold means the same.
 * Deliberate differences: the random stream is this project's xoshiro128** (src/core/random.ts),
 * not igraph's RNG, so partitions equal leidenalg's in quality and agreement, not label for
 * label; tie order among equal gains follows our neighbour order.
 * - nStarts (default 1, as scanpy) runs the whole optimisation from several seeds (seed, seed+1,
 *   …) and keeps the partition of highest modularity, as Seurat's n.start does for Louvain.
 * - Large graphs (>= `largeGraph` nodes, default 100,000) with nIterations = -1: the repetition
 *   also stops after an iteration whose summed gain is below 1e-4 of the total weight (a
 *   modularity gain of about 1e-4). On a 200k-cell kNN graph "until nothing improves" ran 38+
 *   iterations of ~1e-5 modularity each, every one a full pass over the graph; leidenalg does the
 *   same (scanpy >= 1.10 defaults to n_iterations = 2 for this reason). Graphs below the
 *   threshold are unaffected.
 * Output labels: 0..c-1 by community size, largest first, ties by smallest member index.
 */
import type { Csr } from "../core/csr.js";
import type { Gpu } from "../gpu/device.js";
import { Rng } from "../core/random.js";
import { modularity } from "../metrics/index.js";
import { aggregateGraph, graphFromCsr, labelsBySize, type WGraph } from "./communityCommon.js";
import { DeviceLevels } from "./communityGpu.js";

export interface LeidenOptions {
  resolution: number;
  seed: number;
  /** Passes of the whole Leiden procedure; -1 (default, as scanpy) repeats until nothing improves. */
  nIterations?: number;
  /** Independent starts from seeds seed, seed+1, …; the best modularity wins (default 1). */
  nStarts?: number;
  /** Graphs with at least this many nodes stop repeating on a gain below LARGE_MIN_GAIN (header). */
  largeGraph?: number;
}

const MOVE_THRESHOLD = 10 * Number.EPSILON;
const LARGE_GRAPH = 100_000;
/** Smallest summed gain, relative to the total weight, that earns a large graph another iteration. */
const LARGE_MIN_GAIN = 1e-4;

export function leidenCpu(graph: Csr, opts: LeidenOptions): Int32Array {
  const nStarts = opts.nStarts ?? 1;
  if (!(Number.isInteger(nStarts) && nStarts >= 1)) throw new Error(`leidenCpu: nStarts must be a positive integer, got ${nStarts}`);
  let best: Int32Array | undefined;
  let bestQ = -Infinity;
  for (let s = 0; s < nStarts; s++) {
    const labels = leidenOnce(graph, { ...opts, seed: opts.seed + s });
    const q = nStarts > 1 ? modularity(graph, labels, opts.resolution) : 0;
    if (q > bestQ) {
      bestQ = q;
      best = labels;
    }
  }
  return best!;
}

function leidenOnce(graph: Csr, opts: LeidenOptions): Int32Array {
  const g0 = graphFromCsr(graph, true);
  const n = g0.n;
  const membership = new Int32Array(n);
  for (let v = 0; v < n; v++) membership[v] = v;
  let totalWeight = 0;
  for (let v = 0; v < n; v++) totalWeight += g0.nodeWeight[v];
  // Without edges every move has gain 0 (leidenalg's diff_move returns 0): all singletons.
  if (totalWeight === 0) return labelsBySize(membership);

  const nIterations = opts.nIterations ?? -1;
  const rng = new Rng(opts.seed);
  const ctx = new Scratch(n);
  const minGain = n >= (opts.largeGraph ?? LARGE_GRAPH) ? LARGE_MIN_GAIN * totalWeight : 0;
  // As leidenalg's Optimiser.optimise_partition(n_iterations): a fixed count, or until no gain.
  for (let itr = 0; nIterations < 0 || itr < nIterations; itr++) {
    const improvement = optimiseOnce(g0, membership, opts.resolution, totalWeight, rng, ctx);
    if (nIterations < 0 && !(improvement > minGain)) break;
  }
  return labelsBySize(membership);
}

/** Work arrays sized for the largest (first) level, reused by every level. */
class Scratch {
  wTo: Float64Array;
  flag: Uint8Array;
  cand: Int32Array;
  constructor(n: number) {
    this.wTo = new Float64Array(n);
    this.flag = new Uint8Array(n);
    this.cand = new Int32Array(n + 1);
  }
}

/**
 * One call of leidenalg's Optimiser::optimise_partition. `membership` (on the original graph)
 * is the starting partition and receives the result; returns the summed gain of all moves.
 */
function optimiseOnce(g0: WGraph, membership: Int32Array, gamma: number, tw: number, rng: Rng, s: Scratch): number {
  const n0 = g0.n;
  const aggNode = new Int32Array(n0);
  for (let v = 0; v < n0; v++) aggNode[v] = v;
  let g = g0;
  let m = membership;
  let improvement = 0;
  for (;;) {
    improvement += moveNodes(g, m, gamma, tw, rng, s);
    const nComm = renumberInPlace(m);
    if (g !== g0) for (let v = 0; v < n0; v++) membership[v] = m[aggNode[v]];

    const refined = mergeNodesConstrained(g, m, gamma, tw, rng, s);
    const nRefined = renumberInPlace(refined);
    for (let v = 0; v < n0; v++) aggNode[v] = refined[aggNode[v]];
    const next = aggregateGraph(g, refined, nRefined);
    // Each aggregate node starts in the unrefined community of its members.
    const nextM = new Int32Array(nRefined);
    for (let v = 0; v < g.n; v++) nextM[refined[v]] = m[v];

    const further = next.n < g.n && g.n > nComm;
    g = next;
    m = nextM;
    if (!further) break;
  }
  return improvement;
}

/** Fisher–Yates shuffle of 0..n-1 from the high index down, as leidenalg's shuffle(). */
function shuffledRange(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** Relabel community ids 0..c-1 in order of first appearance; returns c. */
function renumberInPlace(m: Int32Array): number {
  const map = new Int32Array(m.length).fill(-1);
  let c = 0;
  for (let v = 0; v < m.length; v++) {
    const old = m[v];
    if (map[old] < 0) map[old] = c++;
    m[v] = map[old];
  }
  return c;
}

/**
 * leidenalg's Optimiser::move_nodes (fast local moving) on graph `g`, membership `m` (ids < g.n)
 * updated in place. Returns the summed gain.
 */
function moveNodes(g: WGraph, m: Int32Array, gamma: number, tw: number, rng: Rng, s: Scratch): number {
  const n = g.n;
  const { indptr, indices, weights, nodeWeight } = g;
  const K = new Float64Array(n);
  const cnt = new Int32Array(n);
  for (let v = 0; v < n; v++) {
    K[m[v]] += nodeWeight[v];
    cnt[m[v]]++;
  }
  const empty = new Int32Array(n);
  let nEmpty = 0;
  for (let c = 0; c < n; c++) if (cnt[c] === 0) empty[nEmpty++] = c;

  // Circular queue holding each node at most once; `stable` = processed and not queued.
  const queue = shuffledRange(n, rng);
  let head = 0;
  let len = n;
  const stable = new Uint8Array(n);
  const { wTo, flag, cand } = s;
  let total = 0;
  while (len > 0) {
    const v = queue[head];
    head = head + 1 === n ? 0 : head + 1;
    len--;
    const a = m[v];
    const kv = nodeWeight[v];
    let nc = 0;
    for (let k = indptr[v]; k < indptr[v + 1]; k++) {
      const c = m[indices[k]];
      if (!flag[c]) {
        flag[c] = 1;
        cand[nc++] = c;
      }
      wTo[c] += weights[k];
    }
    // An empty community is a candidate unless v is alone already.
    const emptyC = cnt[a] > 1 ? empty[nEmpty - 1] : -1;
    const wOld = wTo[a];
    const kOldRest = K[a] - kv;
    let best = a;
    let bestGain = MOVE_THRESHOLD;
    for (let t = 0; t < nc; t++) {
      const c = cand[t];
      if (c !== a) {
        const gain = 2 * (wTo[c] - wOld - (gamma * kv * (K[c] - kOldRest)) / tw);
        if (gain > bestGain) {
          best = c;
          bestGain = gain;
        }
      }
      wTo[c] = 0;
      flag[c] = 0;
    }
    if (emptyC >= 0) {
      const gain = 2 * (-wOld + (gamma * kv * kOldRest) / tw);
      if (gain > bestGain) {
        best = emptyC;
        bestGain = gain;
      }
    }
    stable[v] = 1;
    if (best === a) continue;
    total += bestGain;
    if (best === emptyC) nEmpty--;
    K[a] -= kv;
    if (--cnt[a] === 0) empty[nEmpty++] = a;
    K[best] += kv;
    cnt[best]++;
    m[v] = best;
    for (let k = indptr[v]; k < indptr[v + 1]; k++) {
      const u = indices[k];
      if (stable[u] && m[u] !== best) {
        stable[u] = 0;
        queue[(head + len) % n] = u;
        len++;
      }
    }
  }
  return total;
}

/**
 * leidenalg's Optimiser::merge_nodes_constrained (the refinement): from singletons, each node
 * still alone joins the best sub-community inside its community `m[v]` when the gain is >= 0.
 * Returns the refined membership (ids < g.n, not compact).
 */
function mergeNodesConstrained(g: WGraph, m: Int32Array, gamma: number, tw: number, rng: Rng, s: Scratch): Int32Array {
  const n = g.n;
  const { indptr, indices, weights, nodeWeight } = g;
  const refined = new Int32Array(n);
  const R = new Float64Array(n);
  const cnt = new Int32Array(n);
  for (let v = 0; v < n; v++) {
    refined[v] = v;
    R[v] = nodeWeight[v];
    cnt[v] = 1;
  }
  const order = shuffledRange(n, rng);
  const { wTo, flag, cand } = s;
  for (let t = 0; t < n; t++) {
    const v = order[t];
    const a = refined[v];
    if (cnt[a] !== 1) continue;
    const cv = m[v];
    let nc = 0;
    for (let k = indptr[v]; k < indptr[v + 1]; k++) {
      const u = indices[k];
      if (m[u] !== cv) continue;
      const c = refined[u];
      if (!flag[c]) {
        flag[c] = 1;
        cand[nc++] = c;
      }
      wTo[c] += weights[k];
    }
    const kv = nodeWeight[v];
    let best = a;
    let bestGain = 0;
    for (let q = 0; q < nc; q++) {
      const c = cand[q];
      // v is alone in a, so leaving it costs nothing: the gain is that of joining c.
      const gain = 2 * (wTo[c] - (gamma * kv * R[c]) / tw);
      if (gain >= bestGain) {
        best = c;
        bestGain = gain;
      }
      wTo[c] = 0;
      flag[c] = 0;
    }
    if (best === a) continue;
    R[a] -= kv;
    cnt[a]--;
    R[best] += kv;
    cnt[best]++;
    refined[v] = best;
  }
  return refined;
}


/*
 * leidenGpu — the same Leiden procedure with every level on the device: local moving and
 * refinement (kernels/louvain.wgsl), id compaction and projections (kernels/relabel.wgsl, prefix
 * sums of src/gpu/scan.ts) and aggregation (contractGraphGpu, kernels/contract.wgsl), in
 * DeviceLevels (communityGpu.ts). The graph is uploaded once; between levels only a few counts come back to the host, and the partition of
 * the input nodes once per iteration (the modularity that decides whether to go on is computed
 * on the host in float64).
 * Local moving and refinement are parallel, not leidenalg's sequential queue: in each round every
 * node is given one of 32 colours (8 once a round moves under 1 % of the nodes) from a hash of
 * (node, seed, round); per colour, all nodes of that colour pick their best move at once against
 * the current memberships and community strengths, then the moves are applied and the strengths
 * re-summed as exact 64-bit fixed-point integers (integer atomics: order-free, so bit-identical
 * run to run). Rounds repeat until one moves no node (a fixed point) or 200 rounds. The
 * refinement moves only nodes still alone in their sub-community, into sub-communities of the
 * same community, as leidenalg's merge_nodes_constrained.
 * Differences from leidenCpu: no moves into an empty community in local moving (the refinement
 * splits instead); gains in float32 with a 1e-6·k_v threshold (leidenCpu's refinement also takes
 * zero gains); ties to the smaller community id; a singleton does not join a singleton of larger
 * id; weights in fixed point with 2^-24 resolution at most (graphGpu.ts). The whole procedure
 * repeats (nIterations = -1) while the modularity rises (an iteration that lowers it is
 * discarded), on large graphs while it rises by more than 1e-4 as leidenCpu's rule. No host random
 * stream: same seed => same partition, run after run.
 * A graph over the device's binding limits throws GpuError (the pipeline then runs leidenCpu).
 */
export async function leidenGpu(gpu: Gpu, graph: Csr, opts: LeidenOptions): Promise<Int32Array> {
  const nStarts = opts.nStarts ?? 1;
  if (!(Number.isInteger(nStarts) && nStarts >= 1)) throw new Error(`leidenGpu: nStarts must be a positive integer, got ${nStarts}`);
  let best: Int32Array | undefined;
  let bestQ = -Infinity;
  for (let s = 0; s < nStarts; s++) {
    const labels = await leidenGpuOnce(gpu, graph, { ...opts, seed: opts.seed + s });
    const q = nStarts > 1 ? modularity(graph, labels, opts.resolution) : 0;
    if (q > bestQ) {
      bestQ = q;
      best = labels;
    }
  }
  return best!;
}

async function leidenGpuOnce(gpu: Gpu, graph: Csr, opts: LeidenOptions): Promise<Int32Array> {
  const g0 = graphFromCsr(graph, true);
  const n = g0.n;
  let membership: Int32Array = new Int32Array(n);
  for (let v = 0; v < n; v++) membership[v] = v;
  let totalWeight = 0;
  for (let v = 0; v < n; v++) totalWeight += g0.nodeWeight[v];
  if (totalWeight === 0) return labelsBySize(membership);

  const gamma = opts.resolution;
  const nIterations = opts.nIterations ?? -1;
  const minDeltaQ = n >= (opts.largeGraph ?? LARGE_GRAPH) ? LARGE_MIN_GAIN : 0;
  const levels = await DeviceLevels.create(gpu, g0, gamma, totalWeight, opts.seed, "leiden");
  try {
    let q = modularity(graph, membership, gamma);
    for (let itr = 0; nIterations < 0 || itr < nIterations; itr++) {
      const next = await levels.optimise(membership, true);
      const qNext = modularity(graph, next, gamma);
      if (nIterations >= 0 || qNext > q) membership = next;
      if (nIterations < 0 && !(qNext - q > minDeltaQ)) break;
      q = qNext;
    }
  } finally {
    levels.destroy();
  }
  return labelsBySize(membership);
}
