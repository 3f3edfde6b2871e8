/**
 * Louvain community detection as Seurat's FindClusters(algorithm = 1) runs it: the original
 * Louvain algorithm of Seurat's ModularityOptimizer (a C++ port of Waltman & van Eck's Java
 * ModularityOptimizer 1.3.0, src/ModularityOptimizer.cpp), standard modularity with resolution
 * γ, `nStarts` random starts (default 10) of up to `nIterations` Louvain passes (default 10),
 * keeping the start with the highest modularity; then Seurat's GroupSingletons.
 * Followed step for step so that the same graph and seed give Seurat's partition: Java's
 * java.util.Random (48-bit LCG, as Seurat re-implements it), its permutation routine, the local
 * moving rule (ties to the lower cluster id, a node with no positive gain goes to an unused
 * cluster), reduced networks with neighbours in first-seen order. The seed is FindClusters'
 * random.seed (default 0).
 * Input: symmetric weighted adjacency (both directions). Self loops are ignored, as Seurat reads
 * only the strict lower triangle of the SNN matrix.
 * Deliberate differences: GroupSingletons breaks ties between equally connected clusters by the
 * larger cluster instead of R's sample(), and a singleton with no edges stays a cluster of
 * its own (Seurat would put it in a random cluster). Output labels: 0..c-1 by community size,
 * largest first, ties by smallest member index.
 * louvainGpu (below) runs every level on the GPU; see its comment for how it differs.
 */
import type { Csr } from "../core/csr.js";
import type { Gpu } from "../gpu/device.js";
import { aggregateGraph, graphFromCsr, labelsBySize, type WGraph } from "./communityCommon.js";
import { DeviceLevels, fitsLocalMovingGpu } from "./communityGpu.js";

export interface LouvainOptions {
  resolution: number;
  seed: number;
  /** Random starts, best modularity kept (Seurat's n.start, default 10). */
  nStarts?: number;
  /** Louvain passes per start, stopping early when nothing changes (Seurat's n.iter, default 10). */
  nIterations?: number;
}

/** Options with Seurat's defaults, the graph without self-links and its total arc weight; or the answer outright for an empty or weightless graph. */
function louvainSetup(graph: Csr, opts: LouvainOptions, who: string) {
  const nStarts = opts.nStarts ?? 10;
  const nIterations = opts.nIterations ?? 10;
  if (nStarts < 1 || nIterations < 1) throw new Error(`${who}: nStarts and nIterations must be >= 1`);
  const net = graphFromCsr(graph, false);
  const n = net.n;
  if (n === 0) return new Int32Array(0);
  let totalArcWeight = 0;
  for (let v = 0; v < n; v++) totalArcWeight += net.nodeWeight[v];
  if (totalArcWeight === 0) return labelsBySize(Int32Array.from({ length: n }, (_, i) => i));
  return { nStarts, nIterations, net, n, totalArcWeight };
}

export function louvainCpu(graph: Csr, opts: LouvainOptions): Int32Array {
  const setup = louvainSetup(graph, opts, "louvainCpu");
  if (setup instanceof Int32Array) return setup;
  const { nStarts, nIterations, net, n, totalArcWeight } = setup;

  // Seurat: resolution / (2 * totalEdgeWeight + selfLinks), selfLinks = 0 after dropping them.
  const res = opts.resolution / totalArcWeight;
  const random = new JavaRandom(opts.seed);
  let best: Int32Array | null = null;
  let bestQ = -Infinity;
  for (let s = 0; s < nStarts; s++) {
    const cl: Clustering = { cluster: Int32Array.from({ length: n }, (_, i) => i), nClusters: n };
    let q = 0;
    for (let j = 0; j < nIterations; j++) {
      const update = runLouvain(net, cl, res, random);
      q = quality(net, cl, res, totalArcWeight);
      if (!update) break;
    }
    if (q > bestQ) {
      bestQ = q;
      best = cl.cluster.slice();
    }
  }
  // Seurat groups singletons after ordering clusters by size, so ties favour larger clusters.
  return labelsBySize(groupSingletons(net, labelsBySize(best!)));
}

/** java.util.Random: seed scrambled with 0x5DEECE66D, 48-bit LCG, kept as two 24-bit halves. */
export class JavaRandom {
  private hi: number;
  private lo: number;

  constructor(seed: number) {
    const s = (BigInt.asUintN(64, BigInt(Math.trunc(seed))) ^ 0x5deece66dn) & 0xffffffffffffn;
    this.hi = Number(s >> 24n);
    this.lo = Number(s & 0xffffffn);
  }

  /** The top `bits` (<= 31) of the next LCG state. */
  next(bits: number): number {
    // state * 0x5DEECE66D + 0xB mod 2^48, with 0x5DEECE66D = 0x5DE·2^24 + 0xECE66D; every
    // partial product stays below 2^53.
    const p = this.lo * 0xece66d + 0xb;
    const lo = p % 0x1000000;
    const carry = Math.floor(p / 0x1000000);
    this.hi = (this.hi * 0xece66d + this.lo * 0x5de + carry) % 0x1000000;
    this.lo = lo;
    return Math.floor((this.hi * 0x1000000 + this.lo) / 2 ** (48 - bits));
  }

  nextInt(n: number): number {
    if (n <= 0) throw new Error("JavaRandom.nextInt: n must be positive");
    if ((n & -n) === n) return Math.floor((n * this.next(31)) / 2 ** 31);
    let bits: number;
    let val: number;
    do {
      bits = this.next(31);
      val = bits % n;
    } while (((bits - val + (n - 1)) | 0) < 0);
    return val;
  }
}

interface Clustering {
  cluster: Int32Array;
  nClusters: number;
}

/** Arrays2.generateRandomPermutation: swap each position with a uniformly drawn one. */
function randomPermutation(n: number, random: JavaRandom): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = 0; i < n; i++) {
    const j = random.nextInt(n);
    const k = p[i];
    p[i] = p[j];
    p[j] = k;
  }
  return p;
}

/** VOSClusteringTechnique::runLocalMovingAlgorithm; `cl` updated in place, clusters renumbered. */
function runLocalMoving(net: WGraph, cl: Clustering, res: number, random: JavaRandom): boolean {
  const n = net.n;
  if (n === 1) return false;
  const { indptr, indices, weights, nodeWeight } = net;
  const cluster = cl.cluster;
  const clusterWeight = new Float64Array(n);
  const nNodesPerCluster = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    clusterWeight[cluster[i]] += nodeWeight[i];
    nNodesPerCluster[cluster[i]]++;
  }
  const unusedCluster = new Int32Array(n);
  let nUnused = 0;
  for (let i = 0; i < n; i++) if (nNodesPerCluster[i] === 0) unusedCluster[nUnused++] = i;

  const perm = randomPermutation(n, random);
  const edgeWeightPerCluster = new Float64Array(n);
  const neighboringCluster = new Int32Array(n);
  let update = false;
  let nStable = 0;
  let i = 0;
  do {
    const j = perm[i];
    let nNeighboring = 0;
    for (let k = indptr[j]; k < indptr[j + 1]; k++) {
      const l = cluster[indices[k]];
      if (edgeWeightPerCluster[l] === 0) neighboringCluster[nNeighboring++] = l;
      edgeWeightPerCluster[l] += weights[k];
    }
    const own = cluster[j];
    clusterWeight[own] -= nodeWeight[j];
    if (--nNodesPerCluster[own] === 0) unusedCluster[nUnused++] = own;

    let bestCluster = -1;
    let maxQ = 0;
    for (let k = 0; k < nNeighboring; k++) {
      const l = neighboringCluster[k];
      const q = edgeWeightPerCluster[l] - nodeWeight[j] * clusterWeight[l] * res;
      if (q > maxQ || (q === maxQ && l < bestCluster)) {
        bestCluster = l;
        maxQ = q;
      }
      edgeWeightPerCluster[l] = 0;
    }
    if (maxQ === 0) bestCluster = unusedCluster[--nUnused];

    clusterWeight[bestCluster] += nodeWeight[j];
    nNodesPerCluster[bestCluster]++;
    if (bestCluster === own) nStable++;
    else {
      cluster[j] = bestCluster;
      nStable = 1;
      update = true;
    }
    i = i < n - 1 ? i + 1 : 0;
  } while (nStable < n);

  const newCluster = new Int32Array(n);
  let nClusters = 0;
  for (let c = 0; c < n; c++) if (nNodesPerCluster[c] > 0) newCluster[c] = nClusters++;
  for (let v = 0; v < n; v++) cluster[v] = newCluster[cluster[v]];
  cl.nClusters = nClusters;
  return update;
}

/** VOSClusteringTechnique::runLouvainAlgorithm: local moving, then recurse on the reduced network. */
function runLouvain(net: WGraph, cl: Clustering, res: number, random: JavaRandom): boolean {
  if (net.n === 1) return false;
  return descend(net, cl, res, random, runLocalMoving(net, cl, res, random));
}

/**
 * The rest of runLouvainAlgorithm after local moving on `net` gave `cl` (ids 0..nClusters-1):
 * Louvain on the reduced network, its result mapped back. Returns `update` or'ed with its update.
 */
function descend(net: WGraph, cl: Clustering, res: number, random: JavaRandom, update: boolean): boolean {
  if (cl.nClusters < net.n) {
    const reduced = aggregateGraph(net, cl.cluster, cl.nClusters);
    const sub: Clustering = { cluster: Int32Array.from({ length: reduced.n }, (_, i) => i), nClusters: reduced.n };
    if (runLouvain(reduced, sub, res, random)) {
      update = true;
      for (let v = 0; v < net.n; v++) cl.cluster[v] = sub.cluster[cl.cluster[v]];
      cl.nClusters = sub.nClusters;
    }
  }
  return update;
}

/** VOSClusteringTechnique::calcQualityFunction on the (self-loop free) input network. */
function quality(net: WGraph, cl: Clustering, res: number, totalArcWeight: number): number {
  const { indptr, indices, weights, nodeWeight } = net;
  let q = 0;
  for (let v = 0; v < net.n; v++) {
    const c = cl.cluster[v];
    for (let k = indptr[v]; k < indptr[v + 1]; k++) if (cl.cluster[indices[k]] === c) q += weights[k];
  }
  const clusterWeight = new Float64Array(cl.nClusters);
  for (let v = 0; v < net.n; v++) clusterWeight[cl.cluster[v]] += nodeWeight[v];
  for (let c = 0; c < cl.nClusters; c++) q -= clusterWeight[c] * clusterWeight[c] * res;
  return q / totalArcWeight;
}

/**
 * Seurat's GroupSingletons: each cluster of one node joins the cluster with the highest mean
 * edge weight to it (sum of weights / cluster size), singletons taken in order of first
 * appearance, later ones seeing earlier merges. Cluster sizes are counted among non-singletons.
 */
function groupSingletons(net: WGraph, cluster: Int32Array): Int32Array {
  const n = net.n;
  const out = cluster.slice();
  let nClusters = 0;
  for (let v = 0; v < n; v++) nClusters = Math.max(nClusters, cluster[v] + 1);
  const size = new Int32Array(nClusters);
  for (let v = 0; v < n; v++) size[cluster[v]]++;
  const isSingleton = Uint8Array.from(size, (s) => (s === 1 ? 1 : 0));
  const conn = new Float64Array(nClusters);
  // Clusters adjacent to the current singleton: scanning only these (not all clusters) keeps the
  // pass linear in the edges when there are many singletons.
  const touched = new Int32Array(nClusters);
  for (let v = 0; v < n; v++) {
    if (!isSingleton[cluster[v]]) continue;
    let nTouched = 0;
    for (let k = net.indptr[v]; k < net.indptr[v + 1]; k++) {
      const c = out[net.indices[k]];
      if (isSingleton[c]) continue;
      if (conn[c] === 0) touched[nTouched++] = c;
      conn[c] += net.weights[k];
    }
    // Highest mean wins, ties to the lowest cluster id (as a scan in id order).
    let best = -1;
    let bestMean = 0;
    for (let t = 0; t < nTouched; t++) {
      const c = touched[t];
      if (conn[c] === 0) continue;
      const mean = conn[c] / size[c];
      if (mean > bestMean || (mean === bestMean && best >= 0 && c < best)) {
        best = c;
        bestMean = mean;
      }
    }
    for (let t = 0; t < nTouched; t++) conn[touched[t]] = 0;
    if (best >= 0) {
      out[v] = best;
      size[best]++;
    }
  }
  return out;
}

/*
 * louvainGpu — louvainCpu's procedure with every level on the device (DeviceLevels in
 * communityGpu.ts, the kernels leidenGpu uses): each Louvain pass moves the input graph's nodes,
 * contracts the graph by the communities and moves the aggregate nodes, level after level, until
 * a level merges nothing; only counts come back between levels. The quality of each pass, the
 * choice of the best start and GroupSingletons run on the host exactly as in louvainCpu.
 * GPU local moving is parallel, not ModularityOptimizer's sequential sweep: in each round every
 * node gets one of 32 colours (8 once a round moves under 1 % of the nodes) from a hash of
 * (node, seed, round); per colour, all nodes of that colour pick their best move at once against
 * the current memberships and community strengths, then the strengths are recomputed as exact
 * 64-bit fixed-point integer sums (integer atomics: order-free, so the same seed gives the same
 * partition run after run). Rounds repeat until one moves no node or 200 rounds. The round
 * counter runs on across levels, passes and starts, so each start sees other colourings (the
 * starts' diversity that the permutations give louvainCpu).
 * Differences from louvainCpu: no move to an unused cluster (a node without a positive gain
 * stays), gains in float32 with a 1e-6·k_v threshold, ties to the smaller cluster id among
 * candidates, a singleton does not join a singleton of larger id, weights in fixed point
 * (graphGpu.ts); so partitions equal louvainCpu's in quality and agreement, not label for label.
 * A graph whose arcs exceed the device's binding limit gets louvainCpu's partition.
 */
export async function louvainGpu(gpu: Gpu, graph: Csr, opts: LouvainOptions): Promise<Int32Array> {
  const setup = louvainSetup(graph, opts, "louvainGpu");
  if (setup instanceof Int32Array) return setup;
  const { nStarts, nIterations, net, n, totalArcWeight } = setup;
  if (!fitsLocalMovingGpu(gpu, net)) return louvainCpu(graph, opts);

  const res = opts.resolution / totalArcWeight;
  const levels = await DeviceLevels.create(gpu, net, opts.resolution, totalArcWeight, opts.seed, "louvain");
  let best: Int32Array | null = null;
  let bestQ = -Infinity;
  try {
    for (let s = 0; s < nStarts; s++) {
      const cl: Clustering = { cluster: Int32Array.from({ length: n }, (_, i) => i), nClusters: n };
      let q = 0;
      for (let j = 0; j < nIterations; j++) {
        const before = cl.cluster;
        cl.cluster = await levels.optimise(before, false);
        let moved = false;
        for (let v = 0; v < n && !moved; v++) moved = cl.cluster[v] !== before[v];
        renumberById(cl);
        q = quality(net, cl, res, totalArcWeight);
        if (!moved) break;
      }
      if (q > bestQ) {
        bestQ = q;
        best = cl.cluster.slice();
      }
    }
  } finally {
    levels.destroy();
  }
  return labelsBySize(groupSingletons(net, labelsBySize(best!)));
}

/** Cluster ids made 0..c-1 keeping their order, as runLocalMoving leaves them. */
function renumberById(cl: Clustering): void {
  const n = cl.cluster.length;
  const used = new Uint8Array(n);
  for (let v = 0; v < n; v++) used[cl.cluster[v]] = 1;
  const id = new Int32Array(n);
  let c = 0;
  for (let k = 0; k < n; k++) if (used[k]) id[k] = c++;
  for (let v = 0; v < n; v++) cl.cluster[v] = id[cl.cluster[v]];
  cl.nClusters = c;
}

