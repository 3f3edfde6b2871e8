/**
 * Spectral layout of a weighted graph: umap-learn's `spectral_layout` (umap/spectral.py, 0.5.x),
 * the default UMAP initialisation that scanpy's `tl.umap` uses.
 *
 * Connected graph: the eigenvectors 2..dim+1 of the symmetric normalized Laplacian
 * L = I − D^-1/2 A D^-1/2 (D = weighted degrees), i.e. the eigenvectors of M = D^-1/2 A D^-1/2
 * with the largest eigenvalues after the trivial one (D^1/2·1, eigenvalue 1). umap asks ARPACK
 * for them; here a thick-restart Lanczos with full reorthogonalisation does it, with the trivial
 * eigenvector deflated exactly and a fixed start vector, so the result is a pure function of the
 * graph. Each eigenvector's sign is fixed so that its largest-magnitude entry is positive (ARPACK's
 * sign is arbitrary).
 *
 * Disconnected graph: umap's `multi_component_layout` — each component gets its own spectral
 * layout, scaled to half the distance to the nearest other component and placed at a
 * per-component anchor; components too small for a spectral layout (< 2·dim nodes, or
 * <= dim+1) are placed uniformly at random around their anchor. Anchors are umap's ±unit vectors
 * when there are at most 2·dim components. Deliberate difference: with more components umap lays
 * out the anchors from the components' centroids in the input data, which this function does not
 * receive; it puts them evenly on the unit circle (dim 2) / a spread of unit vectors instead.
 *
 * The graph must be symmetric (UMAP connectivities are); zero-degree nodes are their own
 * components.
 *
 * Large graphs (a component of >= `largeGraph` nodes, default 100,000): the Lanczos tolerance is
 * umap-learn's eigsh tol, 1e-4 (1e-7 below the threshold), and the thick restarts stop after
 * `largeMaxRestarts` (default 30); if the residuals are still above 1e-4 then, the Ritz vectors
 * reached are the layout. A kNN graph of many clusters has dozens of eigenvalues within 1e-3 of 1,
 * so at 200k cells the top two converge to 1e-7 only after hundreds of restarts (hours); umap-learn
 * falls back to a random init when its solver fails, whereas approximate eigenvectors of the
 * leading subspace still keep the clusters apart, which a random init does not. Deterministic
 * either way (fixed start vector, fixed restart count).
 */
import type { Csr } from "../core/csr.js";
import type { Rng } from "../core/random.js";

/** Weakly connected components, labelled 0.. in order of each component's smallest node. */
export function connectedComponents(graph: Csr): { count: number; labels: Int32Array } {
  const n = graph.nRows;
  const labels = new Int32Array(n).fill(-1);
  const stack = new Int32Array(n);
  let count = 0;
  for (let s = 0; s < n; s++) {
    if (labels[s] >= 0) continue;
    let top = 0;
    stack[top++] = s;
    labels[s] = count;
    while (top > 0) {
      const v = stack[--top];
      const b = graph.indptr[v + 1];
      for (let k = graph.indptr[v]; k < b; k++) {
        const u = graph.indices[k];
        if (labels[u] < 0) {
          labels[u] = count;
          stack[top++] = u;
        }
      }
    }
    count++;
  }
  return { count, labels };
}

/**
 * umap's spectral_layout: n × dim row-major coordinates (float64). `rng` is used only for the
 * random placement of tiny components of a disconnected graph.
 */
export function spectralLayoutCpu(graph: Csr, dim: number, rng: Rng, opts: SpectralOptions = {}): Float64Array {
  const n = graph.nRows;
  const solver = {
    largeGraph: opts.largeGraph ?? LARGE_GRAPH,
    largeMaxRestarts: opts.largeMaxRestarts ?? LARGE_MAX_RESTARTS,
  };
  const { count, labels } = connectedComponents(graph);
  if (count === 1 && n > dim + 1) return connectedSpectral(graph, dim, solver);
  return multiComponentLayout(graph, dim, count, labels, rng, solver);
}

export interface SpectralOptions {
  /** Components of at least this many nodes get the large-graph solver settings (header). */
  largeGraph?: number;
  /** Thick restarts allowed on a large component. */
  largeMaxRestarts?: number;
}

const LARGE_GRAPH = 100_000;
const LARGE_MAX_RESTARTS = 30;
const TOL = 1e-7;
const LARGE_TOL = 1e-4; // umap-learn's eigsh(tol=1e-4)
const MAX_RESTARTS = 2000;

function multiComponentLayout(
  graph: Csr,
  dim: number,
  count: number,
  labels: Int32Array,
  rng: Rng,
  solver: Required<SpectralOptions>,
): Float64Array {
  const n = graph.nRows;
  const anchors = componentAnchors(count, dim);
  const result = new Float64Array(n * dim);
  const members: number[][] = Array.from({ length: count }, () => []);
  for (let i = 0; i < n; i++) members[labels[i]].push(i);
  for (let c = 0; c < count; c++) {
    // Half the distance to the nearest other anchor (umap: distances[distances > 0].min() / 2).
    let nearest = Infinity;
    for (let o = 0; o < count; o++) {
      let d2 = 0;
      for (let d = 0; d < dim; d++) d2 += (anchors[c * dim + d] - anchors[o * dim + d]) ** 2;
      if (d2 > 0 && d2 < nearest) nearest = d2;
    }
    const range = Number.isFinite(nearest) ? Math.sqrt(nearest) / 2 : 1;
    const idx = members[c];
    const size = idx.length;
    if (size < 2 * dim || size <= dim + 1) {
      for (const i of idx) {
        for (let d = 0; d < dim; d++) result[i * dim + d] = rng.nextFloat() * 2 * range - range + anchors[c * dim + d];
      }
      continue;
    }
    const emb = connectedSpectral(inducedSubgraph(graph, idx), dim, solver);
    let maxAbs = 0;
    for (let t = 0; t < emb.length; t++) maxAbs = Math.max(maxAbs, Math.abs(emb[t]));
    const expansion = maxAbs > 0 ? range / maxAbs : 0;
    for (let r = 0; r < size; r++) {
      for (let d = 0; d < dim; d++) result[idx[r] * dim + d] = emb[r * dim + d] * expansion + anchors[c * dim + d];
    }
  }
  return result;
}

/** umap's meta-embedding: [I_k, 0; −I_k, 0] rows for <= 2·dim components, else unit vectors spread out. */
function componentAnchors(count: number, dim: number): Float64Array {
  const a = new Float64Array(count * dim);
  if (count <= 2 * dim) {
    const k = Math.ceil(count / 2);
    for (let c = 0; c < count; c++) {
      const axis = c % k;
      a[c * dim + axis] = c < k ? 1 : -1;
    }
    return a;
  }
  for (let c = 0; c < count; c++) {
    const angle = (2 * Math.PI * c) / count;
    a[c * dim] = Math.cos(angle);
    if (dim > 1) a[c * dim + 1] = Math.sin(angle);
  }
  return a;
}

function inducedSubgraph(graph: Csr, idx: number[]): Csr {
  const local = new Int32Array(graph.nRows).fill(-1);
  idx.forEach((g, l) => (local[g] = l));
  let nnz = 0;
  for (const g of idx) nnz += graph.indptr[g + 1] - graph.indptr[g];
  const indptr = new Float64Array(idx.length + 1);
  const cols = new Uint32Array(nnz);
  const vals = new Float32Array(nnz);
  let o = 0;
  idx.forEach((g, l) => {
    const b = graph.indptr[g + 1];
    for (let k = graph.indptr[g]; k < b; k++) {
      const j = local[graph.indices[k]];
      if (j >= 0) {
        cols[o] = j;
        vals[o++] = graph.data[k];
      }
    }
    indptr[l + 1] = o;
  });
  return { nRows: idx.length, nCols: idx.length, indptr, indices: cols.slice(0, o), data: vals.slice(0, o) };
}

/** Eigenvectors 2..dim+1 of D^-1/2 A D^-1/2 for a connected graph with more than dim+1 nodes. */
function connectedSpectral(graph: Csr, dim: number, solver: Required<SpectralOptions>): Float64Array {
  const n = graph.nRows;
  const nnz = graph.indptr[n];
  const deg = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const b = graph.indptr[i + 1];
    for (let k = graph.indptr[i]; k < b; k++) s += graph.data[k];
    deg[i] = s;
  }
  const invSqrt = Float64Array.from(deg, (d) => (d > 0 ? 1 / Math.sqrt(d) : 0));
  const w = new Float64Array(nnz);
  for (let i = 0; i < n; i++) {
    const b = graph.indptr[i + 1];
    for (let k = graph.indptr[i]; k < b; k++) w[k] = graph.data[k] * invSqrt[i] * invSqrt[graph.indices[k]];
  }
  // Trivial eigenvector D^1/2·1 (eigenvalue 1), deflated exactly.
  const u0 = Float64Array.from(deg, Math.sqrt);
  scale(u0, 1 / Math.sqrt(dot(u0, u0)));
  const { indptr, indices } = graph;
  const matvec = (x: Float64Array, y: Float64Array) => {
    let k = indptr[0];
    for (let i = 0; i < n; i++) {
      let s = 0;
      const b = indptr[i + 1];
      for (; k < b; k++) s += w[k] * x[indices[k]];
      y[i] = s;
    }
  };
  const large = n >= solver.largeGraph;
  const vecs = lanczosTop(matvec, n, dim, u0, large ? LARGE_TOL : TOL, large ? solver.largeMaxRestarts : MAX_RESTARTS);
  const out = new Float64Array(n * dim);
  for (let c = 0; c < dim; c++) {
    const v = vecs.subarray(c * n, (c + 1) * n);
    let arg = 0;
    for (let i = 1; i < n; i++) if (Math.abs(v[i]) > Math.abs(v[arg])) arg = i;
    const sign = v[arg] < 0 ? -1 : 1;
    for (let i = 0; i < n; i++) out[i * dim + c] = sign * v[i];
  }
  return out;
}

/**
 * The `nWant` eigenvectors with the largest eigenvalues of a symmetric operator restricted to the
 * complement of the unit vector `locked`: thick-restart Lanczos (Wu & Simon 2000), full
 * reorthogonalisation (classical Gram–Schmidt, two passes), basis of at most 40 vectors, until
 * the residuals of the wanted Ritz pairs are <= tol or after maxRestarts restarts.
 * Returns the vectors one after another (nWant × n), eigenvalues descending.
 */
function lanczosTop(
  matvec: (x: Float64Array, y: Float64Array) => void,
  n: number,
  nWant: number,
  locked: Float64Array,
  tol: number,
  maxRestarts: number,
): Float64Array {
  const m = Math.min(n - 1, 40);
  const keep = Math.min(m - 1, nWant + Math.floor((m - nWant) / 2));
  const V = new Float64Array(m * n);
  const H = new Float64Array(m * m);
  const w = new Float64Array(n);
  const coef = new Float64Array(m);
  const basis = (j: number) => V.subarray(j * n, (j + 1) * n);
  let fresh = 0; // counter for deterministic replacement vectors

  // Orthogonalise x against `locked` and V[0..count-1] (twice); returns the coefficients' sum in coef.
  // Modified Gram–Schmidt: each subtraction x −= c·v is fused with the next vector's dot product
  // over the updated x (same operations in the same order as separate axpy and dot passes,
  // one sweep over x instead of two).
  const orthogonalise = (x: Float64Array, count: number) => {
    coef.fill(0, 0, count);
    for (let pass = 0; pass < 2; pass++) {
      const c0 = dot(locked, x);
      if (count === 0) {
        axpy(x, -c0, locked);
        continue;
      }
      // c: dot of V[i] with x after the subtractions before it.
      let c = axpyDot(x, -c0, locked, 0, V, 0);
      for (let i = 0; i < count - 1; i++) {
        coef[i] += c;
        c = axpyDot(x, -c, V, i * n, V, (i + 1) * n);
      }
      coef[count - 1] += c;
      axpyAt(x, -c, V, (count - 1) * n);
    }
  };
  // A unit vector orthogonal to locked and V[0..count-1], from a fixed pseudo-random sequence.
  const newDirection = (out: Float64Array, count: number): boolean => {
    for (let attempt = 0; attempt < 3; attempt++) {
      for (let i = 0; i < n; i++) out[i] = 0.5 + hashUnit(i, fresh);
      fresh++;
      orthogonalise(out, count);
      const norm = Math.sqrt(dot(out, out));
      if (norm > 1e-8) {
        scale(out, 1 / norm);
        return true;
      }
    }
    return false;
  };

  if (!newDirection(basis(0), 0)) throw new Error("spectral layout: graph too small");
  let start = 0; // first column whose A·v must still be computed
  let theta: Float64Array = new Float64Array(0);
  let Y: Float64Array = new Float64Array(0);
  let size = m;
  for (let restart = 0; restart <= maxRestarts; restart++) {
    size = m;
    let beta = 0;
    for (let j = start; j < m; j++) {
      matvec(basis(j), w);
      orthogonalise(w, j + 1);
      for (let i = 0; i <= j; i++) H[i * m + j] = coef[i];
      beta = Math.sqrt(dot(w, w));
      if (j === m - 1) break;
      if (beta > 1e-10) {
        basis(j + 1).set(w);
        scale(basis(j + 1), 1 / beta);
      } else if (!newDirection(basis(j + 1), j + 1)) {
        size = j + 1; // the Krylov space is the whole (deflated) space: exact
        beta = 0;
        break;
      }
    }
    const Hs = new Float64Array(size * size);
    for (let i = 0; i < size; i++) {
      for (let j = i; j < size; j++) Hs[i * size + j] = Hs[j * size + i] = H[i * m + j];
    }
    ({ values: theta, vectors: Y } = symmetricEigen(Hs, size));
    let converged = true;
    for (let t = 0; t < nWant; t++) if (Math.abs(beta * Y[(size - 1) * size + t]) > tol) converged = false;
    if (converged || size < m || restart === maxRestarts) break;
    // Thick restart: keep the top `keep` Ritz vectors, continue from the residual direction.
    const kept = combine(V, n, Y, size, keep);
    V.set(kept);
    H.fill(0);
    for (let i = 0; i < keep; i++) H[i * m + i] = theta[i];
    basis(keep).set(w);
    scale(basis(keep), 1 / beta);
    start = keep;
  }
  return combine(V, n, Y, size, nWant);
}

/** Columns 0..count-1 of V·Y (V: size vectors of length n; Y: size × size row-major). */
function combine(V: Float64Array, n: number, Y: Float64Array, size: number, count: number): Float64Array {
  const out = new Float64Array(count * n);
  for (let c = 0; c < count; c++) {
    const o = out.subarray(c * n, (c + 1) * n);
    for (let j = 0; j < size; j++) axpy(o, Y[j * size + c], V.subarray(j * n, (j + 1) * n));
  }
  return out;
}

/**
 * Cyclic Jacobi eigen-decomposition of a small symmetric matrix (row-major s × s). Returns the
 * eigenvalues descending and the matching eigenvectors as columns of a row-major s × s matrix.
 */
export function symmetricEigen(A: Float64Array, s: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(A);
  const v = new Float64Array(s * s);
  for (let i = 0; i < s; i++) v[i * s + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < s; i++) {
      for (let j = 0; j < s; j++) {
        total += a[i * s + j] ** 2;
        if (i !== j) off += a[i * s + j] ** 2;
      }
    }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < s - 1; p++) {
      for (let q = p + 1; q < s; q++) {
        const apq = a[p * s + q];
        if (apq === 0) continue;
        const tau = (a[q * s + q] - a[p * s + p]) / (2 * apq);
        const t = Math.sign(tau || 1) / (Math.abs(tau) + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const sn = t * c;
        for (let k = 0; k < s; k++) {
          const akp = a[k * s + p];
          const akq = a[k * s + q];
          a[k * s + p] = c * akp - sn * akq;
          a[k * s + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < s; k++) {
          const apk = a[p * s + k];
          const aqk = a[q * s + k];
          a[p * s + k] = c * apk - sn * aqk;
          a[q * s + k] = sn * apk + c * aqk;
        }
        for (let k = 0; k < s; k++) {
          const vkp = v[k * s + p];
          const vkq = v[k * s + q];
          v[k * s + p] = c * vkp - sn * vkq;
          v[k * s + q] = sn * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: s }, (_, i) => i).sort((x, y) => a[y * s + y] - a[x * s + x] || x - y);
  const values = Float64Array.from(order, (i) => a[i * s + i]);
  const vectors = new Float64Array(s * s);
  for (let r = 0; r < s; r++) for (let c = 0; c < s; c++) vectors[r * s + c] = v[r * s + order[c]];
  return { values, vectors };
}

function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

function axpy(y: Float64Array, alpha: number, x: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i] += alpha * x[i];
}

/** y += alpha·a[aOff ..], where a[aOff ..] has y's length. */
function axpyAt(y: Float64Array, alpha: number, a: Float64Array, aOff: number): void {
  for (let i = 0; i < y.length; i++) y[i] += alpha * a[aOff + i];
}

/** y += alpha·a[aOff ..], then returns dot(b[bOff ..], y) of the updated y, in one sweep. */
function axpyDot(y: Float64Array, alpha: number, a: Float64Array, aOff: number, b: Float64Array, bOff: number): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i] + alpha * a[aOff + i];
    y[i] = v;
    s += b[bOff + i] * v;
  }
  return s;
}

function scale(x: Float64Array, alpha: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= alpha;
}

/** Fixed pseudo-random value in [0, 1) for (i, stream): a murmur3 finaliser of the pair. */
function hashUnit(i: number, stream: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
