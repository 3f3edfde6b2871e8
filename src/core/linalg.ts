/**
 * Small dense linear algebra in float64: the symmetric tridiagonal QL eigensolver (EISPACK tql2,
 * as in JAMA) and a Lanczos eigensolver with full reorthogonalisation for the top-k eigenpairs of
 * a symmetric positive semi-definite operator given as a mat-vec. PCA uses it on the p×p Gram
 * matrix (gram route) or on the implicit operator ZᵀZ (krylov route): a full tridiagonalisation
 * of a 2000² matrix costs ~10¹⁰ flops in JS, whereas Lanczos needs a few hundred mat-vecs.
 */
import { Rng } from "./random.js";

/**
 * Eigen-decomposition of the symmetric tridiagonal matrix with diagonal `d` (length m) and
 * off-diagonal `e` (length m−1; e[i] couples i and i+1), by implicit QL with Wilkinson-type
 * shifts (tql2). `z` (nz × m row-major) is multiplied on the right by the eigenvector matrix:
 * pass the identity for full eigenvectors, or a single row eₘᵀ to get only the last component
 * of each eigenvector in O(m²). Returns eigenvalues descending; the columns of z are permuted
 * to match. d/e are not modified.
 */
export function tridiagEig(dIn: ArrayLike<number>, eIn: ArrayLike<number>, z: Float64Array, nz: number): Float64Array {
  const n = dIn.length;
  const d = Float64Array.from(dIn);
  const e = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) e[i] = eIn[i];
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error("tridiagEig: no convergence");
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (let k = 0; k < nz; k++) {
            const o = k * n;
            h = z[o + i + 1];
            z[o + i + 1] = s * z[o + i] + c * h;
            z[o + i] = c * z[o + i] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  // Sort descending (stable on ties, so the order is deterministic), permuting z's columns.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[b] - d[a] || a - b);
  const vals = Float64Array.from(order, (i) => d[i]);
  const row = new Float64Array(n);
  for (let k = 0; k < nz; k++) {
    const o = k * n;
    for (let i = 0; i < n; i++) row[i] = z[o + order[i]];
    z.set(row, o);
  }
  return vals;
}

export interface LanczosOptions {
  /** Converged when every wanted Ritz pair has residual ‖Av − θv‖ ≤ tol · θ₁. */
  tol?: number;
  /** Most Lanczos steps (the Krylov dimension); capped at the operator size. */
  maxSteps?: number;
}

export interface EigResult {
  /** k eigenvalues, descending. */
  values: Float64Array;
  /** k × n row-major: row i is the unit eigenvector of values[i]. */
  vectors: Float64Array;
  /** Lanczos steps taken and the largest relative Ritz residual β·|yₘ|/θ₁ of the returned pairs. */
  steps: number;
  maxResidual: number;
}

/**
 * Top-k eigenpairs of a symmetric PSD operator of size n (`apply(x, y)` sets y = A·x) by Lanczos
 * with full reorthogonalisation (classical Gram–Schmidt, repeated when needed), from a seeded normal
 * vector. Convergence is checked every few steps from the Ritz residuals β·|last component|.
 * If the Krylov space becomes invariant early (β ≈ 0), it continues with a fresh random
 * direction orthogonal to all previous ones, so degenerate eigenvalues are found too.
 */
export function lanczosTopK(
  apply: (x: Float64Array, y: Float64Array) => void,
  n: number,
  k: number,
  seed: number,
  opts: LanczosOptions = {},
): EigResult {
  if (k > n) throw new Error(`lanczosTopK: k=${k} > n=${n}`);
  const tol = opts.tol ?? 1e-9;
  const maxSteps = Math.min(n, opts.maxSteps ?? Math.max(10 * k, k + 200));
  const rng = new Rng(seed);
  const Q: Float64Array[] = [];
  const alpha: number[] = [];
  const beta: number[] = []; // beta[j] couples steps j and j+1
  const w = new Float64Array(n);
  const coef = new Float64Array(maxSteps);

  let maxResidual = Infinity;
  const orthogonalize = (v: Float64Array): void => {
    gramSchmidtPass(Q, v, coef, n);
    gramSchmidtPass(Q, v, coef, n);
  };
  const randomUnit = (): Float64Array | null => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = rng.normal();
      orthogonalize(v);
      const nv = norm(v);
      if (nv > 1e-8) {
        for (let i = 0; i < n; i++) v[i] /= nv;
        return v;
      }
    }
    return null;
  };

  let q = randomUnit()!;
  const checkEvery = Math.max(5, Math.ceil(k / 5));
  for (;;) {
    Q.push(q);
    const m = Q.length;
    apply(q, w);
    let a = 0;
    for (let i = 0; i < n; i++) a += q[i] * w[i];
    // Three-term recurrence, then full reorthogonalisation against every Lanczos vector: one
    // classical Gram–Schmidt pass, a second only when the first removed much ("twice is enough").
    const bPrev = m > 1 ? beta[m - 2] : 0;
    const qPrev = m > 1 ? Q[m - 2] : q;
    for (let i = 0; i < n; i++) w[i] -= a * q[i] + bPrev * qPrev[i];
    for (let pass = 0; pass < 2; pass++) {
      const before = norm(w);
      a += gramSchmidtPass(Q, w, coef, n);
      if (norm(w) > 0.7 * before) break;
    }
    alpha.push(a);
    const b = norm(w);
    const atEnd = m >= maxSteps;
    if (m >= k && (atEnd || (m - k) % checkEvery === 0)) {
      // Residual of Ritz pair i is β·|last component of its eigenvector of T|.
      const last = new Float64Array(m);
      last[m - 1] = 1;
      const theta = tridiagEig(alpha, beta, last, 1);
      const scale = Math.max(theta[0], Number.MIN_VALUE);
      let worst = 0;
      for (let i = 0; i < k; i++) worst = Math.max(worst, (b * Math.abs(last[i])) / scale);
      maxResidual = worst;
      if (worst <= tol || atEnd) break;
    }
    let next: Float64Array | null;
    if (b > 1e-10 * Math.max(Math.abs(a), 1e-300)) {
      next = new Float64Array(n);
      for (let i = 0; i < n; i++) next[i] = w[i] / b;
      beta.push(b);
    } else {
      // Invariant subspace found: continue with a fresh orthogonal direction.
      next = randomUnit();
      beta.push(0);
    }
    if (!next) break;
    q = next;
  }

  const m = Q.length;
  const Y = new Float64Array(m * m);
  for (let i = 0; i < m; i++) Y[i * m + i] = 1;
  const theta = tridiagEig(alpha, beta.slice(0, m - 1), Y, m);
  const values = theta.slice(0, k);
  const vectors = new Float64Array(k * n);
  for (let t = 0; t < m; t++) {
    const qt = Q[t];
    for (let i = 0; i < k; i++) {
      const y = Y[t * m + i];
      const o = i * n;
      for (let r = 0; r < n; r++) vectors[o + r] += y * qt[r];
    }
  }
  return { values, vectors, steps: m, maxResidual };
}

/**
 * One classical Gram–Schmidt pass: v −= Σ_t (q_tᵀv) q_t over the orthonormal vectors Q.
 * Returns the coefficient on the last vector (Lanczos folds it into α).
 */
function gramSchmidtPass(Q: Float64Array[], v: Float64Array, coef: Float64Array, n: number): number {
  const m = Q.length;
  for (let t = 0; t < m; t++) {
    const q = Q[t];
    let s = 0;
    for (let i = 0; i < n; i++) s += q[i] * v[i];
    coef[t] = s;
  }
  for (let t = 0; t < m; t++) {
    const q = Q[t];
    const s = coef[t];
    for (let i = 0; i < n; i++) v[i] -= s * q[i];
  }
  return m > 0 ? coef[m - 1] : 0;
}

export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/** y = A·x for a dense symmetric (or any square) n×n row-major matrix A. */
export function denseMatVec(A: Float64Array, n: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const o = i * n;
    let s0 = 0;
    let s1 = 0;
    let j = 0;
    for (; j + 1 < n; j += 2) {
      s0 += A[o + j] * x[j];
      s1 += A[o + j + 1] * x[j + 1];
    }
    if (j < n) s0 += A[o + j] * x[j];
    y[i] = s0 + s1;
  }
}
