/**
 * Small dense linear algebra in float64: the symmetric tridiagonal QL eigensolver (EISPACK tql2,
 * as in JAMA), tridiagonal inverse iteration for selected eigenvectors, a symmetric mat-vec, and
 * a Lanczos eigensolver with full reorthogonalisation for the top-k eigenpairs of
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
  // Lanczos vectors back to back in one array (vector t at t·n): flat loops, no per-vector objects.
  const Q = new Float64Array(maxSteps * n);
  let m = 0;
  const alpha: number[] = [];
  const beta: number[] = []; // beta[j] couples steps j and j+1
  const w = new Float64Array(n);
  const coef = new Float64Array(maxSteps);

  let maxResidual = Infinity;
  const randomUnit = (): Float64Array | null => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = rng.normal();
      gramSchmidtPass(Q, m, v, coef, n);
      gramSchmidtPass(Q, m, v, coef, n);
      const nv = norm(v);
      if (nv > 1e-8) {
        for (let i = 0; i < n; i++) v[i] /= nv;
        return v;
      }
    }
    return null;
  };

  let q = randomUnit()!;
  // Residuals are checked every 5 steps once close (each check is an O(m²) QL); while the worst
  // residual is still orders of magnitude above tol, less often (the last pairs converge at
  // roughly a decade per 10 steps, so these gaps do not overshoot).
  let nextCheck = k;
  for (;;) {
    Q.set(q, m * n);
    m++;
    apply(q, w);
    let a = 0;
    for (let i = 0; i < n; i++) a += q[i] * w[i];
    // Three-term recurrence, then full reorthogonalisation against every Lanczos vector: one
    // classical Gram–Schmidt pass, a second only when the first removed much ("twice is enough").
    const bPrev = m > 1 ? beta[m - 2] : 0;
    const pPrev = m > 1 ? (m - 2) * n : (m - 1) * n;
    for (let i = 0; i < n; i++) w[i] -= a * q[i] + bPrev * Q[pPrev + i];
    for (let pass = 0; pass < 2; pass++) {
      const before = norm(w);
      a += gramSchmidtPass(Q, m, w, coef, n);
      if (norm(w) > 0.7 * before) break;
    }
    alpha.push(a);
    const b = norm(w);
    const atEnd = m >= maxSteps;
    if (atEnd || m === nextCheck) {
      // Residual of Ritz pair i is β·|last component of its eigenvector of T|.
      const last = new Float64Array(m);
      last[m - 1] = 1;
      const theta = tridiagEig(alpha, beta, last, 1);
      const scale = Math.max(theta[0], Number.MIN_VALUE);
      let worst = 0;
      for (let i = 0; i < k; i++) worst = Math.max(worst, (b * Math.abs(last[i])) / scale);
      maxResidual = worst;
      if (worst <= tol || atEnd) break;
      nextCheck = m + (worst > 1e4 * tol ? 20 : worst > 1e2 * tol ? 10 : 5);
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

  // Ritz vectors: T's top-k eigenvectors by inverse iteration (O(k·m)), not the O(m³)
  // accumulated QL that the full eigenvector matrix would cost, then Q·y.
  const off = beta.slice(0, m - 1);
  const theta = tridiagEig(alpha, off, new Float64Array(0), 0);
  const values = theta.slice(0, k);
  const Y = tridiagEigvecs(alpha, off, values);
  const vectors = new Float64Array(k * n);
  for (let t = 0; t < m; t++) {
    const qo = t * n;
    for (let i = 0; i < k; i++) {
      const y = Y[i * m + t];
      const o = i * n;
      for (let r = 0; r < n; r++) vectors[o + r] += y * Q[qo + r];
    }
  }
  return { values, vectors, steps: m, maxResidual };
}

/**
 * Unit eigenvectors (rows of the result, length m) of the symmetric tridiagonal T (diagonal d,
 * off-diagonal e) for the given eigenvalues, which must be accurate (e.g. from tridiagEig), in
 * descending order. Inverse iteration as LAPACK's stein does it: LU with partial pivoting of
 * T − λI, three solves from a fixed start vector, and each vector orthogonalised against the
 * earlier ones of its cluster (eigenvalues closer than 1e-3·‖T‖), so close pairs come out
 * orthogonal. Deterministic.
 */
export function tridiagEigvecs(d: ArrayLike<number>, e: ArrayLike<number>, values: ArrayLike<number>): Float64Array {
  const m = d.length;
  const k = values.length;
  const out = new Float64Array(k * m);
  if (m === 0) return out;
  let tnorm = 0;
  for (let i = 0; i < m; i++) tnorm = Math.max(tnorm, Math.abs(d[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0) + (i < m - 1 ? Math.abs(e[i]) : 0));
  const eps = 2 ** -52;
  const tiny = Math.max(eps * tnorm, Number.MIN_VALUE);
  // LU of T − λI with row interchanges: U has diagonals u0, u1, u2; L the multipliers l and swaps.
  const u0 = new Float64Array(m);
  const u1 = new Float64Array(m);
  const u2 = new Float64Array(m);
  const l = new Float64Array(m);
  const swap = new Uint8Array(m);
  const y = new Float64Array(m);
  let clusterStart = 0;
  for (let v = 0; v < k; v++) {
    const lam = values[v];
    if (v > 0 && Math.abs(values[v - 1] - lam) > 1e-3 * tnorm) clusterStart = v;
    // Factorise: row i holds (a, b, c) at columns i, i+1, i+2 once eliminated.
    let a = d[0] - lam;
    let b = m > 1 ? e[0] : 0;
    let c = 0;
    for (let i = 0; i < m - 1; i++) {
      const sub = e[i];
      const nd = d[i + 1] - lam;
      const ne = i + 1 < m - 1 ? e[i + 1] : 0;
      if (Math.abs(a) >= Math.abs(sub)) {
        swap[i] = 0;
        const mult = a === 0 ? 0 : sub / a;
        l[i] = mult;
        u0[i] = a;
        u1[i] = b;
        u2[i] = c;
        a = nd - mult * b;
        b = ne - mult * c;
        c = 0;
      } else {
        swap[i] = 1;
        const mult = a / sub;
        l[i] = mult;
        u0[i] = sub;
        u1[i] = nd;
        u2[i] = ne;
        a = b - mult * nd;
        b = c - mult * ne;
        c = 0;
      }
    }
    u0[m - 1] = a;
    for (let i = 0; i < m; i++) if (Math.abs(u0[i]) < tiny) u0[i] = u0[i] < 0 ? -tiny : tiny;
    // Start vector: fixed, not aligned with any particular eigenvector.
    for (let i = 0; i < m; i++) y[i] = 1 + ((i * 7919) % 17) / 17;
    for (let it = 0; it < 3; it++) {
      // Forward: apply L⁻¹ (with the interchanges).
      for (let i = 0; i < m - 1; i++) {
        if (swap[i]) {
          const t = y[i];
          y[i] = y[i + 1];
          y[i + 1] = t - l[i] * y[i];
        } else {
          y[i + 1] -= l[i] * y[i];
        }
      }
      // Back: U⁻¹.
      for (let i = m - 1; i >= 0; i--) {
        let s = y[i];
        if (i + 1 < m) s -= u1[i] * y[i + 1];
        if (i + 2 < m) s -= u2[i] * y[i + 2];
        y[i] = s / u0[i];
      }
      for (let w = clusterStart; w < v; w++) {
        const o = w * m;
        let dot = 0;
        for (let i = 0; i < m; i++) dot += out[o + i] * y[i];
        for (let i = 0; i < m; i++) y[i] -= dot * out[o + i];
      }
      const ny = norm(y);
      for (let i = 0; i < m; i++) y[i] /= ny;
    }
    out.set(y, v * m);
  }
  return out;
}

/**
 * One classical Gram–Schmidt pass: v −= Σ_t (q_tᵀv) q_t over the m orthonormal vectors stored
 * back to back in Q, four vectors per sweep over v. Returns the coefficient on the last vector
 * (Lanczos folds it into α).
 */
function gramSchmidtPass(Q: Float64Array, m: number, v: Float64Array, coef: Float64Array, n: number): number {
  let t = 0;
  for (; t + 4 <= m; t += 4) {
    const o0 = t * n;
    const o1 = o0 + n;
    const o2 = o1 + n;
    const o3 = o2 + n;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < n; i++) {
      const x = v[i];
      s0 += Q[o0 + i] * x;
      s1 += Q[o1 + i] * x;
      s2 += Q[o2 + i] * x;
      s3 += Q[o3 + i] * x;
    }
    coef[t] = s0;
    coef[t + 1] = s1;
    coef[t + 2] = s2;
    coef[t + 3] = s3;
  }
  for (; t < m; t++) {
    const o = t * n;
    let s = 0;
    for (let i = 0; i < n; i++) s += Q[o + i] * v[i];
    coef[t] = s;
  }
  t = 0;
  for (; t + 4 <= m; t += 4) {
    const o0 = t * n;
    const o1 = o0 + n;
    const o2 = o1 + n;
    const o3 = o2 + n;
    const c0 = coef[t];
    const c1 = coef[t + 1];
    const c2 = coef[t + 2];
    const c3 = coef[t + 3];
    for (let i = 0; i < n; i++) v[i] -= c0 * Q[o0 + i] + c1 * Q[o1 + i] + c2 * Q[o2 + i] + c3 * Q[o3 + i];
  }
  for (; t < m; t++) {
    const o = t * n;
    const c = coef[t];
    for (let i = 0; i < n; i++) v[i] -= c * Q[o + i];
  }
  return m > 0 ? coef[m - 1] : 0;
}

export function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

/**
 * y = A·x for a dense symmetric n×n row-major A, reading only its upper triangle: each stored
 * a_ij (j > i) serves both y_i and y_j, so the matrix streams from memory at half the bytes of
 * a plain product. Four rows per sweep share the loads of x_j and the update of y_j and keep
 * four independent sums. Fixed order (deterministic).
 */
export function symMatVec(A: Float64Array, n: number, x: Float64Array, y: Float64Array): void {
  y.fill(0);
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const o0 = i * n;
    const o1 = o0 + n;
    const o2 = o1 + n;
    const o3 = o2 + n;
    const x0 = x[i];
    const x1 = x[i + 1];
    const x2 = x[i + 2];
    const x3 = x[i + 3];
    // The 4×4 diagonal block, its lower half read from the upper.
    const a01 = A[o0 + i + 1];
    const a02 = A[o0 + i + 2];
    const a03 = A[o0 + i + 3];
    const a12 = A[o1 + i + 2];
    const a13 = A[o1 + i + 3];
    const a23 = A[o2 + i + 3];
    let s0 = A[o0 + i] * x0 + a01 * x1 + a02 * x2 + a03 * x3;
    let s1 = a01 * x0 + A[o1 + i + 1] * x1 + a12 * x2 + a13 * x3;
    let s2 = a02 * x0 + a12 * x1 + A[o2 + i + 2] * x2 + a23 * x3;
    let s3 = a03 * x0 + a13 * x1 + a23 * x2 + A[o3 + i + 3] * x3;
    for (let j = i + 4; j < n; j++) {
      const a0 = A[o0 + j];
      const a1 = A[o1 + j];
      const a2 = A[o2 + j];
      const a3 = A[o3 + j];
      const xj = x[j];
      s0 += a0 * xj;
      s1 += a1 * xj;
      s2 += a2 * xj;
      s3 += a3 * xj;
      y[j] += a0 * x0 + a1 * x1 + (a2 * x2 + a3 * x3);
    }
    y[i] += s0;
    y[i + 1] += s1;
    y[i + 2] += s2;
    y[i + 3] += s3;
  }
  for (; i < n; i++) {
    const o = i * n;
    const xi = x[i];
    let s = A[o + i] * xi;
    for (let j = i + 1; j < n; j++) {
      const a = A[o + j];
      s += a * x[j];
      y[j] += a * xi;
    }
    y[i] += s;
  }
}
