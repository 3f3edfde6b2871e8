/**
 * Agreement metrics used by tests and the bench: ARI, Jaccard, kNN recall, PC subspace
 * similarity, trustworthiness and modularity. Plain float64 CPU code.
 */
import type { Csr } from "../core/csr.js";

/** Adjusted Rand index between two labelings of the same items. */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error("adjustedRandIndex: labelings differ in length");
  const n = a.length;
  const ia = new Map<number, number>();
  const ib = new Map<number, number>();
  const ca: number[] = [];
  const cb: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!ia.has(a[i])) ia.set(a[i], ia.size);
    if (!ib.has(b[i])) ib.set(b[i], ib.size);
    ca.push(ia.get(a[i])!);
    cb.push(ib.get(b[i])!);
  }
  const table = new Map<number, number>();
  const ra = new Float64Array(ia.size);
  const rb = new Float64Array(ib.size);
  for (let i = 0; i < n; i++) {
    const key = ca[i] * ib.size + cb[i];
    table.set(key, (table.get(key) ?? 0) + 1);
    ra[ca[i]]++;
    rb[cb[i]]++;
  }
  const c2 = (x: number) => (x * (x - 1)) / 2;
  let sumIj = 0;
  for (const v of table.values()) sumIj += c2(v);
  let sumA = 0;
  let sumB = 0;
  for (const v of ra) sumA += c2(v);
  for (const v of rb) sumB += c2(v);
  const expected = (sumA * sumB) / c2(n);
  const max = (sumA + sumB) / 2;
  if (max === expected) return 1;
  return (sumIj - expected) / (max - expected);
}

export function jaccard<T>(a: Iterable<T>, b: Iterable<T>): number {
  const sa = new Set(a);
  const sb = new Set(b);
  let inter = 0;
  for (const x of sa) if (sb.has(x)) inter++;
  const union = sa.size + sb.size - inter;
  return union === 0 ? 1 : inter / union;
}

/** Mean over rows of |found ∩ truth| / k, each row's k neighbours given row-major. */
export function knnRecall(found: ArrayLike<number>, truth: ArrayLike<number>, n: number, k: number, kTruth = k): number {
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const t = new Set<number>();
    for (let j = 0; j < kTruth; j++) t.add(truth[i * kTruth + j]);
    for (let j = 0; j < k; j++) if (t.has(found[i * k + j])) hits++;
  }
  return hits / (n * k);
}

/** Orthonormal basis (modified Gram–Schmidt, twice) of the columns of an n×k row-major matrix. */
function orthonormalColumns(m: ArrayLike<number>, n: number, k: number, stride = k): Float64Array[] {
  const cols: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = m[i * stride + j];
    for (let pass = 0; pass < 2; pass++) {
      for (const q of cols) {
        let d = 0;
        for (let i = 0; i < n; i++) d += q[i] * v[i];
        for (let i = 0; i < n; i++) v[i] -= d * q[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    if (norm > 0) for (let i = 0; i < n; i++) v[i] /= norm;
    cols.push(v);
  }
  return cols;
}

/**
 * Mean squared cosine of the principal angles between the spans of the first k columns of two
 * n×(stride) row-major score matrices: 1 means the same subspace.
 */
export function subspaceSimilarity(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
  k: number,
  strideA = k,
  strideB = k,
): number {
  const qa = orthonormalColumns(a, n, k, strideA);
  const qb = orthonormalColumns(b, n, k, strideB);
  let fro = 0;
  for (const x of qa) {
    for (const y of qb) {
      let d = 0;
      for (let i = 0; i < n; i++) d += x[i] * y[i];
      fro += d * d;
    }
  }
  return fro / k;
}

function sqDistRow(x: ArrayLike<number>, d: number, i: number, out: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < d; t++) {
      const diff = x[i * d + t] - x[j * d + t];
      s += diff * diff;
    }
    out[j] = s;
  }
}

/**
 * sklearn.manifold.trustworthiness with euclidean distances: how well the embedding's k nearest
 * neighbours are also near in the original space. O(n²) memory-free but O(n² d) time.
 */
export function trustworthiness(
  original: ArrayLike<number>,
  dOrig: number,
  embedding: ArrayLike<number>,
  dEmb: number,
  n: number,
  k = 15,
): number {
  const dist = new Float64Array(n);
  const order = new Int32Array(n);
  const rank = new Int32Array(n);
  let penalty = 0;
  for (let i = 0; i < n; i++) {
    sqDistRow(original, dOrig, i, dist, n);
    dist[i] = -Infinity; // self first, as sklearn sorts it to rank 0
    for (let j = 0; j < n; j++) order[j] = j;
    order.sort((p, q) => dist[p] - dist[q] || p - q);
    for (let r = 0; r < n; r++) rank[order[r]] = r; // self has rank 0
    sqDistRow(embedding, dEmb, i, dist, n);
    dist[i] = -Infinity;
    for (let j = 0; j < n; j++) order[j] = j;
    order.sort((p, q) => dist[p] - dist[q] || p - q);
    for (let r = 1; r <= k; r++) penalty += Math.max(0, rank[order[r]] - k);
  }
  return 1 - penalty * (2 / (n * k * (2 * n - 3 * k - 1)));
}

/**
 * Modularity with resolution γ of a partition of a weighted undirected graph given as a
 * symmetric CSR adjacency (both directions stored): Q = 1/(2m) Σ_ij [A_ij − γ k_i k_j/(2m)] δ(c_i,c_j).
 */
export function modularity(graph: Csr, labels: ArrayLike<number>, resolution = 1): number {
  const n = graph.nRows;
  let twoM = 0;
  const degree = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = graph.indptr[i]; k < graph.indptr[i + 1]; k++) degree[i] += graph.data[k];
    twoM += degree[i];
  }
  const tot = new Map<number, number>();
  let inside = 0;
  for (let i = 0; i < n; i++) {
    tot.set(labels[i], (tot.get(labels[i]) ?? 0) + degree[i]);
    for (let k = graph.indptr[i]; k < graph.indptr[i + 1]; k++) {
      if (labels[graph.indices[k]] === labels[i]) inside += graph.data[k];
    }
  }
  let expected = 0;
  for (const t of tot.values()) expected += t * t;
  return inside / twoM - (resolution * expected) / (twoM * twoM);
}
