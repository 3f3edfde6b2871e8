/** Small graphs for the community-detection tests (CPU and GPU twins alike). */
import type { Csr } from "../../src/core/csr.js";

/** CSR from (i, j, w) triplets, column indices sorted within each row (stable for repeats). */
export function csrFromTriplets(n: number, I: ArrayLike<number>, J: ArrayLike<number>, W: ArrayLike<number>): Csr {
  const order = Array.from({ length: I.length }, (_, e) => e).sort((a, b) => I[a] - I[b] || J[a] - J[b]);
  const indptr = new Float64Array(n + 1);
  for (let e = 0; e < I.length; e++) indptr[I[e] + 1]++;
  for (let i = 0; i < n; i++) indptr[i + 1] += indptr[i];
  const indices = new Uint32Array(I.length);
  const data = new Float32Array(I.length);
  order.forEach((e, o) => {
    indices[o] = J[e];
    data[o] = W[e];
  });
  return { nRows: n, nCols: n, indptr, indices, data };
}

/** Undirected edge list (a, b, w = 1) -> symmetric CSR with both directions, columns sorted within each row. */
export function symmetric(n: number, edges: [number, number, number?][]): Csr {
  const rows: [number, number][][] = Array.from({ length: n }, () => []);
  for (const [a, b, w = 1] of edges) {
    rows[a].push([b, w]);
    if (a !== b) rows[b].push([a, w]);
  }
  const indptr = new Float64Array(n + 1);
  const indices: number[] = [];
  const data: number[] = [];
  rows.forEach((r, i) => {
    r.sort((x, y) => x[0] - y[0]);
    for (const [j, w] of r) {
      indices.push(j);
      data.push(w);
    }
    indptr[i + 1] = indices.length;
  });
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(indices), data: Float32Array.from(data) };
}

/** All edges among `nodes`. */
export function clique(nodes: number[]): [number, number][] {
  const e: [number, number][] = [];
  for (let a = 0; a < nodes.length; a++) for (let b = a + 1; b < nodes.length; b++) e.push([nodes[a], nodes[b]]);
  return e;
}

export function median(x: number[]): number {
  const s = [...x].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
