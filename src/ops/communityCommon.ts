/**
 * Shared pieces of the community detection ops (leiden.ts, louvain.ts): a weighted graph
 * without self loops in flat typed arrays, graph aggregation by a partition, and the final
 * relabelling of a membership by community size.
 */
import type { Csr } from "../core/csr.js";

/**
 * Symmetric weighted graph, both directions stored, self loops removed from the adjacency.
 * `nodeWeight[v]` is the node's strength (sum of its arc weights, its self loop included unless
 * the builder dropped it); `selfWeight[v]` is the self-loop weight kept out of the adjacency.
 */
export interface WGraph {
  n: number;
  indptr: Int32Array;
  indices: Int32Array;
  weights: Float64Array;
  nodeWeight: Float64Array;
  selfWeight: Float64Array;
}

/**
 * Copy a symmetric CSR adjacency. Self loops leave the adjacency; with `keepSelfLoops` their
 * weight stays in the node strength (leidenalg/igraph semantics), otherwise they are dropped
 * altogether (Seurat's ModularityOptimizer reads only the strict lower triangle).
 */
export function graphFromCsr(g: Csr, keepSelfLoops: boolean): WGraph {
  if (g.nRows !== g.nCols) throw new Error(`community detection: adjacency must be square, got ${g.nRows}x${g.nCols}`);
  const n = g.nRows;
  const indptr = new Int32Array(n + 1);
  let nnz = 0;
  for (let i = 0; i < n; i++) {
    for (let k = g.indptr[i]; k < g.indptr[i + 1]; k++) if (g.indices[k] !== i && g.data[k] !== 0) nnz++;
    indptr[i + 1] = nnz;
  }
  const indices = new Int32Array(nnz);
  const weights = new Float64Array(nnz);
  const nodeWeight = new Float64Array(n);
  const selfWeight = new Float64Array(n);
  let o = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = g.indptr[i]; k < g.indptr[i + 1]; k++) {
      const j = g.indices[k];
      const w = g.data[k];
      if (j === i) {
        if (keepSelfLoops) {
          selfWeight[i] += w;
          s += w;
        }
      } else if (w !== 0) {
        indices[o] = j;
        weights[o++] = w;
        s += w;
      }
    }
    nodeWeight[i] = s;
  }
  return { n, indptr, indices, weights, nodeWeight, selfWeight };
}

/**
 * Collapse `g` by `cluster` (values 0..nClusters-1, all used): one node per cluster, node
 * weights summed, arcs between clusters summed, arcs inside a cluster added to its self weight.
 * Neighbours are listed in first-seen order, walking each cluster's members by increasing index
 * (as Seurat's Network::createReducedNetwork, so Louvain's tie order matches it).
 */
export function aggregateGraph(g: WGraph, cluster: Int32Array, nClusters: number): WGraph {
  // Members of each cluster by increasing node index (counting sort).
  const start = new Int32Array(nClusters + 1);
  for (let v = 0; v < g.n; v++) start[cluster[v] + 1]++;
  for (let c = 0; c < nClusters; c++) start[c + 1] += start[c];
  const members = new Int32Array(g.n);
  const fill = start.slice(0, nClusters);
  for (let v = 0; v < g.n; v++) members[fill[cluster[v]]++] = v;

  const indptr = new Int32Array(nClusters + 1);
  const indicesBuf = new Int32Array(g.indices.length);
  const weightsBuf = new Float64Array(g.indices.length);
  const nodeWeight = new Float64Array(nClusters);
  const selfWeight = new Float64Array(nClusters);
  const acc = new Float64Array(nClusters);
  const seen = new Uint8Array(nClusters);
  const touched = new Int32Array(nClusters);
  let nnz = 0;
  for (let c = 0; c < nClusters; c++) {
    let nTouched = 0;
    for (let m = start[c]; m < start[c + 1]; m++) {
      const v = members[m];
      nodeWeight[c] += g.nodeWeight[v];
      selfWeight[c] += g.selfWeight[v];
      for (let k = g.indptr[v]; k < g.indptr[v + 1]; k++) {
        const d = cluster[g.indices[k]];
        if (d === c) {
          selfWeight[c] += g.weights[k];
        } else {
          if (!seen[d]) {
            seen[d] = 1;
            touched[nTouched++] = d;
          }
          acc[d] += g.weights[k];
        }
      }
    }
    for (let t = 0; t < nTouched; t++) {
      const d = touched[t];
      indicesBuf[nnz] = d;
      weightsBuf[nnz++] = acc[d];
      acc[d] = 0;
      seen[d] = 0;
    }
    indptr[c + 1] = nnz;
  }
  return {
    n: nClusters,
    indptr,
    indices: indicesBuf.slice(0, nnz),
    weights: weightsBuf.slice(0, nnz),
    nodeWeight,
    selfWeight,
  };
}

/**
 * Renumber a membership 0..c-1 by community size, largest first, ties broken by the smallest
 * member index (the order leidenalg and Seurat report, made total).
 */
export function labelsBySize(membership: ArrayLike<number>): Int32Array {
  const n = membership.length;
  const id = new Map<number, number>();
  const size: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = membership[i];
    const k = id.get(c);
    if (k === undefined) {
      id.set(c, size.length);
      size.push(1);
    } else size[k]++;
  }
  // Dense ids are in first-appearance order, which is smallest-member order.
  const order = Array.from(size.keys()).sort((a, b) => size[b] - size[a] || a - b);
  const rank = new Int32Array(size.length);
  order.forEach((k, r) => (rank[k] = r));
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = rank[id.get(membership[i])!];
  return out;
}
