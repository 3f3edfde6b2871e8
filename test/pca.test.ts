import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Csr, fromDense, subsetCols } from "../src/core/csr.js";
import { symMatVec, tridiagEig, tridiagEigvecs } from "../src/core/linalg.js";
import { Rng } from "../src/core/random.js";
import { knnRecall, subspaceSimilarity } from "../src/metrics/index.js";
import { scaledGramCpu } from "../src/ops/gram.js";
import { pcaCpu } from "../src/ops/pca.js";
import { scaleParamsCpu } from "../src/ops/scale.js";
import { readMatrix, readTsv, referenceDir } from "./helpers/reference.js";
import { referenceQcInput } from "./helpers/referenceInput.js";

/** Reference QC-passing cells (COMMON.md recipe), normalized, restricted to the reference HVGs. */
function prepareHvgMatrix(name: string): Csr {
  const d = referenceQcInput(name);
  const hvg = new Set(readTsv(join(referenceDir(name), "hvg.tsv")).num("feature_index"));
  return subsetCols(d.logNorm, d.featureIndex.map((f) => (hvg.has(f) ? 1 : 0)));
}

/** Exact k nearest neighbours (self included) of every `step`-th cell, by euclidean distance. */
function bruteKnn(x: ArrayLike<number>, n: number, d: number, k: number, step: number): Int32Array {
  const out = new Int32Array(Math.ceil(n / step) * k);
  const sq = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) sq[i] += x[i * d + t] ** 2;
  const bestD = new Float64Array(k);
  const bestI = new Int32Array(k);
  for (let i = 0; i < n; i += step) {
    bestD.fill(Infinity);
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let t = 0; t < d; t++) dot += x[i * d + t] * x[j * d + t];
      const dist = sq[i] + sq[j] - 2 * dot;
      if (dist >= bestD[k - 1]) continue;
      let p = k - 1;
      while (p > 0 && bestD[p - 1] > dist) {
        bestD[p] = bestD[p - 1];
        bestI[p] = bestI[p - 1];
        p--;
      }
      bestD[p] = dist;
      bestI[p] = j;
    }
    out.set(bestI, (i / step) * k);
  }
  return out;
}

describe("PCA vs scanpy_like reference", () => {
  for (const name of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(`pcaCpu on ${name}: subspace, variance ratio, signs, kNN@15 recall`, () => {
      const X = prepareHvgMatrix(name);
      const t0 = performance.now();
      const r = pcaCpu(X, { nComps: 50, maxValue: 10, seed: 0 });
      console.log(`${name}: pcaCpu ${X.nRows}×${X.nCols} (nnz ${X.indptr[X.nRows]}) in ${(performance.now() - t0).toFixed(0)} ms`);
      const n = X.nRows;
      const ref = readMatrix(join(referenceDir(name), "pca.tsv.gz"), "PC_");
      expect(ref.n).toBe(n);
      const sub10 = subspaceSimilarity(r.scores, ref.data, n, 10, 50, 50);
      const sub50 = subspaceSimilarity(r.scores, ref.data, n, 50, 50, 50);
      console.log(`${name}: subspace PC1-10 ${sub10}, PC1-50 ${sub50}`);
      expect(sub10).toBeGreaterThanOrEqual(0.999);

      const pv = readTsv(join(referenceDir(name), "pca_variance.tsv"));
      const refRatio = pv.num("variance_ratio");
      const refVar = pv.num("variance");
      let worst = 0;
      for (let i = 0; i < 50; i++) worst = Math.max(worst, Math.abs(r.varianceRatio[i] / refRatio[i] - 1), Math.abs(r.variance[i] / refVar[i] - 1));
      console.log(`${name}: max relative error of variance / variance_ratio ${worst}`);
      expect(worst).toBeLessThan(1e-3);

      // Signs (sklearn's svd_flip on u): each PC should point the same way as the reference's.
      for (let i = 0; i < 10; i++) {
        let dot = 0;
        for (let c = 0; c < n; c++) dot += r.scores[c * 50 + i] * ref.data[c * 50 + i];
        expect(dot).toBeGreaterThan(0);
      }

      // All cells on pbmc3k; every 3rd cell as query on the larger set (keeps the test short).
      const step = n > 5000 ? 3 : 1;
      const truth = readMatrix(join(referenceDir(name), "knn_indices.tsv.gz"), "nn_");
      const queries = Math.ceil(n / step);
      const truthRows = new Float64Array(queries * 15);
      for (let q = 0; q < queries; q++) truthRows.set(truth.data.subarray(q * step * 15, (q * step + 1) * 15), q * 15);
      const recall = knnRecall(bruteKnn(r.scores, n, 50, 15, step), truthRows, queries, 15);
      console.log(`${name}: kNN@15 recall on 50 PCs ${recall}`);
      expect(recall).toBeGreaterThanOrEqual(0.99);
    }, 120_000);
  }
});

/** Random sparse matrix with an empty row, a never-expressed gene and values that clip. */
function randomSparse(seed: number, n: number, p: number): Csr {
  const rng = new Rng(seed);
  const dense = new Float64Array(n * p);
  for (let i = 0; i < n; i++) {
    if (i === 3) continue; // empty row
    for (let j = 0; j < p; j++) {
      if (j === 5) continue; // never expressed
      const rate = j === 7 ? 0.03 : 0.3; // rare gene: its few values scale far beyond the clip
      if (rng.nextFloat() < rate) dense[i * p + j] = Math.fround(Math.log1p(1 + 20 * rng.nextFloat() ** 3));
    }
  }
  return fromDense(dense, n, p);
}

describe("scaled Gram and PCA, self-contained", () => {
  it("scaledGramCpu equals the dense clipped, re-centred Gram", () => {
    const n = 120;
    const p = 17;
    const X = randomSparse(7, n, p);
    const { mean, std } = scaleParamsCpu(X);
    for (const maxValue of [1.5, undefined]) {
      const { gram, colMean, c } = scaledGramCpu(X, mean, std, maxValue);
      const clip = (v: number) => (maxValue === undefined ? v : Math.min(maxValue, Math.max(-maxValue, v)));
      const Z = new Float64Array(n * p);
      for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) Z[i * p + j] = clip((0 - mean[j]) / std[j]);
      for (let i = 0; i < n; i++) {
        for (let t = X.indptr[i]; t < X.indptr[i + 1]; t++) {
          const j = X.indices[t];
          Z[i * p + j] = clip((X.data[t] - mean[j]) / std[j]);
        }
      }
      let clipped = 0;
      for (const z of Z) if (maxValue !== undefined && Math.abs(z) === maxValue) clipped++;
      if (maxValue !== undefined) expect(clipped).toBeGreaterThan(n); // the test exercises clipping
      const m = new Float64Array(p);
      for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) m[j] += Z[i * p + j] / n;
      for (let j = 0; j < p; j++) {
        expect(colMean[j]).toBeCloseTo(m[j], 12);
        expect(c[j]).toBe(clip(-mean[j] / std[j]));
        for (let k = 0; k < p; k++) {
          let g = 0;
          for (let i = 0; i < n; i++) g += (Z[i * p + j] - m[j]) * (Z[i * p + k] - m[k]);
          expect(Math.abs(gram[j * p + k] - g)).toBeLessThan(1e-10 * (1 + Math.abs(g)));
        }
      }
      // The never-expressed gene scales to zeros (std 0 -> 1) and has an all-zero Gram row.
      expect(std[5]).toBe(1);
      for (let k = 0; k < p; k++) expect(gram[5 * p + k]).toBe(0);
    }
  });

  it("gram and krylov routes agree, runs are deterministic, and the sign convention holds", () => {
    const X = randomSparse(11, 300, 60);
    const a = pcaCpu(X, { nComps: 8, maxValue: 3, seed: 1, method: "gram" });
    const b = pcaCpu(X, { nComps: 8, maxValue: 3, seed: 1, method: "krylov" });
    const a2 = pcaCpu(X, { nComps: 8, maxValue: 3, seed: 1, method: "gram" });
    expect(Array.from(a2.scores)).toEqual(Array.from(a.scores));
    expect(subspaceSimilarity(a.scores, b.scores, 300, 8)).toBeGreaterThan(1 - 1e-9);
    for (let i = 0; i < 8; i++) {
      expect(b.variance[i] / a.variance[i]).toBeCloseTo(1, 9);
      let best = 0;
      for (let r = 0; r < 300; r++) if (Math.abs(a.scores[r * 8 + i]) > Math.abs(best)) best = a.scores[r * 8 + i];
      expect(best).toBeGreaterThan(0);
    }
    // Components are orthonormal, and scores = centred clipped Z · componentsᵀ (variance check).
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) {
        let d = 0;
        for (let t = 0; t < 60; t++) d += a.components[i * 60 + t] * a.components[j * 60 + t];
        expect(d).toBeCloseTo(i === j ? 1 : 0, 5);
      }
      let ss = 0;
      for (let r = 0; r < 300; r++) ss += a.scores[r * 8 + i] ** 2;
      expect(ss / 299 / a.variance[i]).toBeCloseTo(1, 5);
    }
  });
});

describe("linalg kernels behind the Lanczos solver", () => {
  it("symMatVec equals the plain product (odd and even sizes)", () => {
    const rng = new Rng(3);
    for (const n of [1, 2, 7, 40]) {
      const A = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) A[i * n + j] = A[j * n + i] = rng.normal();
      const x = Float64Array.from({ length: n }, () => rng.normal());
      const y = new Float64Array(n).fill(NaN);
      symMatVec(A, n, x, y);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += A[i * n + j] * x[j];
        expect(Math.abs(y[i] - s)).toBeLessThan(1e-12 * (1 + Math.abs(s)));
      }
    }
  });

  it("tridiagEigvecs: eigenvectors match QL's, stay orthonormal in near-degenerate clusters", () => {
    // Random tridiagonal (separated eigenvalues) and Wilkinson's W21+ (pairs equal to ~1e-13).
    const rng = new Rng(5);
    const cases = [
      { d: Array.from({ length: 60 }, () => rng.normal()), e: Array.from({ length: 59 }, () => rng.normal()) },
      { d: Array.from({ length: 21 }, (_, i) => Math.abs(10 - i)), e: new Array(20).fill(1) },
    ];
    for (const [ci, { d, e }] of cases.entries()) {
      const m = d.length;
      const Z = new Float64Array(m * m);
      for (let i = 0; i < m; i++) Z[i * m + i] = 1;
      const values = tridiagEig(d, e, Z, m);
      const k = Math.min(12, m);
      const Y = tridiagEigvecs(d, e, values.slice(0, k));
      for (let a = 0; a < k; a++) {
        // Residual ‖T y − λ y‖ and orthonormality against every other returned vector.
        let res = 0;
        for (let i = 0; i < m; i++) {
          let ty = d[i] * Y[a * m + i] - values[a] * Y[a * m + i];
          if (i > 0) ty += e[i - 1] * Y[a * m + i - 1];
          if (i < m - 1) ty += e[i] * Y[a * m + i + 1];
          res = Math.max(res, Math.abs(ty));
        }
        expect(res).toBeLessThan(1e-10);
        for (let b = 0; b < k; b++) {
          let dot = 0;
          for (let i = 0; i < m; i++) dot += Y[a * m + i] * Y[b * m + i];
          expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThan(1e-9);
        }
        if (ci === 0) {
          let dot = 0;
          for (let i = 0; i < m; i++) dot += Y[a * m + i] * Z[i * m + a];
          expect(Math.abs(dot)).toBeCloseTo(1, 9);
        }
      }
    }
  });
});
