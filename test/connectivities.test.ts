import { describe, expect, it } from "vitest";
import type { Csr } from "../src/core/csr.js";
import {
  fuzzySimplicialSetCpu,
  knnDistancesCsr,
  smoothKnnDistCpu,
  snnGraphCpu,
} from "../src/ops/connectivities.js";
import { type Knn, knnExactCpu } from "../src/ops/knn.js";
import { readMatrix, readTsv, referenceDir } from "./helpers/reference.js";

function readKnn(dataset: string, tool: string): Knn {
  const dir = referenceDir(dataset, tool);
  const idx = readMatrix(`${dir}/knn_indices.tsv.gz`, "nn_");
  const dist = readMatrix(`${dir}/knn_distances.tsv.gz`, "d_");
  return { n: idx.n, k: idx.k, indices: Int32Array.from(idx.data), distances: Float32Array.from(dist.data) };
}

/** (i, j, weight) triplets keyed by i * n + j. */
function readGraph(path: string, n: number): Map<number, number> {
  const t = readTsv(path);
  const i = t.num("i");
  const j = t.num("j");
  const w = t.num("weight");
  const m = new Map<number, number>();
  for (let e = 0; e < i.length; e++) m.set(i[e] * n + j[e], w[e]);
  return m;
}

function expectWellFormed(g: Csr, n: number): void {
  expect(g.nRows).toBe(n);
  expect(g.nCols).toBe(n);
  let unsorted = 0;
  for (let r = 0; r < n; r++) {
    for (let p = g.indptr[r] + 1; p < g.indptr[r + 1]; p++) if (g.indices[p] <= g.indices[p - 1]) unsorted++;
  }
  expect(unsorted).toBe(0);
}

function expectSymmetric(g: Csr): void {
  const m = new Map<number, number>();
  for (let r = 0; r < g.nRows; r++) {
    for (let p = g.indptr[r]; p < g.indptr[r + 1]; p++) m.set(r * g.nRows + g.indices[p], g.data[p]);
  }
  let asymmetric = 0;
  for (let r = 0; r < g.nRows; r++) {
    for (let p = g.indptr[r]; p < g.indptr[r + 1]; p++) if (m.get(g.indices[p] * g.nRows + r) !== g.data[p]) asymmetric++;
  }
  expect(asymmetric).toBe(0);
}

/** Same sparsity pattern as the reference and the largest absolute weight difference. */
function compareToReference(g: Csr, ref: Map<number, number>): { missing: number; extra: number; maxAbs: number } {
  let found = 0;
  let extra = 0;
  let maxAbs = 0;
  for (let r = 0; r < g.nRows; r++) {
    for (let p = g.indptr[r]; p < g.indptr[r + 1]; p++) {
      const want = ref.get(r * g.nRows + g.indices[p]);
      if (want === undefined) {
        extra++;
        continue;
      }
      found++;
      maxAbs = Math.max(maxAbs, Math.abs(want - g.data[p]));
    }
  }
  return { missing: ref.size - found, extra, maxAbs };
}

describe("fuzzySimplicialSetCpu vs scanpy's connectivities (from the reference kNN)", () => {
  for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(dataset, () => {
      const knn = readKnn(dataset, "scanpy_like");
      const ref = readGraph(`${referenceDir(dataset, "scanpy_like")}/connectivities.tsv.gz`, knn.n);
      const g = fuzzySimplicialSetCpu(knn);
      expectWellFormed(g, knn.n);
      expectSymmetric(g);
      const c = compareToReference(g, ref);
      console.log(`${dataset}: nnz=${g.indptr[knn.n]} ref=${ref.size} missing=${c.missing} extra=${c.extra} maxAbs=${c.maxAbs.toExponential(2)}`);
      expect(c.missing).toBe(0);
      expect(c.extra).toBe(0);
      // the reference distances are printed to 7 significant digits; with sigma ~0.08 that alone moves
      // a weight by ~1e-4 × w, so this is close to the tightest bound the inputs allow
      expect(c.maxAbs).toBeLessThan(1e-4);
    });
  }

  it("sigma solves Σ_{j≥1} exp(−max(0, d_j − rho)/sigma) = log2(k) on every row (pbmc3k)", () => {
    const knn = readKnn("pbmc3k", "scanpy_like");
    const { sigmas, rhos } = smoothKnnDistCpu(knn);
    const { n, k, distances } = knn;
    let worst = 0;
    let wrongRho = 0;
    for (let i = 0; i < n; i++) {
      let firstNonZero = 0;
      for (let j = 0; j < k && firstNonZero === 0; j++) firstNonZero = distances[i * k + j];
      if (rhos[i] !== firstNonZero) wrongRho++;
      let psum = 0;
      for (let j = 1; j < k; j++) psum += Math.exp(-Math.max(0, distances[i * k + j] - rhos[i]) / sigmas[i]);
      worst = Math.max(worst, Math.abs(psum - Math.log2(k)));
    }
    expect(wrongRho).toBe(0);
    // float32 bisection: converged to the float32 resolution of sigma
    expect(worst).toBeLessThan(1e-3);
  });
});

describe("connectivities from our own exact kNN (pbmc3k)", () => {
  it("same graph as scanpy; weights equal where scanpy's self-distances are exactly 0", () => {
    const dir = referenceDir("pbmc3k", "scanpy_like");
    const pca = readMatrix(`${dir}/pca.tsv.gz`, "PC_");
    const refKnn = readKnn("pbmc3k", "scanpy_like");
    const ref = readGraph(`${dir}/connectivities.tsv.gz`, pca.n);
    const g = fuzzySimplicialSetCpu(knnExactCpu(Float32Array.from(pca.data), pca.n, pca.k, 15));
    const c = compareToReference(g, ref);
    expect(c.missing).toBe(0);
    expect(c.extra).toBe(0);
    // scanpy's (sklearn's) GEMM-form self-distance is rounding noise (~1e-7) for many cells, and umap
    // then takes it as rho. Where both endpoints had an exact 0 there, weights must agree.
    const exactSelf = (i: number) => refKnn.distances[i * refKnn.k] === 0;
    let compared = 0;
    let maxAbs = 0;
    for (let r = 0; r < g.nRows; r++) {
      if (!exactSelf(r)) continue;
      for (let p = g.indptr[r]; p < g.indptr[r + 1]; p++) {
        if (!exactSelf(g.indices[p])) continue;
        compared++;
        maxAbs = Math.max(maxAbs, Math.abs(ref.get(r * g.nRows + g.indices[p])! - g.data[p]));
      }
    }
    console.log(`pbmc3k own kNN: edges compared=${compared} of ${ref.size}, maxAbs=${maxAbs.toExponential(2)}`);
    expect(compared).toBeGreaterThan(5000);
    expect(maxAbs).toBeLessThan(1e-4);
  });
});

describe("knnDistancesCsr", () => {
  it("drops self, sorts columns, keeps duplicates' zero distances", () => {
    const knn: Knn = {
      n: 3,
      k: 3,
      indices: Int32Array.from([0, 2, 1, 1, 2, 0, 2, 1, 0]),
      distances: Float32Array.from([0, 0, 5, 0, 4, 5, 0, 0, 4]),
    };
    const d = knnDistancesCsr(knn);
    expect(Array.from(d.indptr)).toEqual([0, 2, 4, 6]);
    expect(Array.from(d.indices)).toEqual([1, 2, 0, 2, 0, 1]);
    expect(Array.from(d.data)).toEqual([5, 0, 5, 4, 4, 0]);
  });

  it("rejects a kNN list whose first neighbour is not the cell itself", () => {
    const knn: Knn = { n: 2, k: 2, indices: Int32Array.from([1, 0, 1, 0]), distances: new Float32Array(4) };
    expect(() => knnDistancesCsr(knn)).toThrow(/row 0/);
  });

  it("holds the reference kNN distances (pbmc3k)", () => {
    const knn = readKnn("pbmc3k", "scanpy_like");
    const d = knnDistancesCsr(knn);
    expectWellFormed(d, knn.n);
    let wrong = 0;
    for (let i = 0; i < knn.n; i++) {
      if (d.indptr[i + 1] - d.indptr[i] !== knn.k - 1) wrong++;
      const want = new Map<number, number>();
      for (let j = 1; j < knn.k; j++) want.set(knn.indices[i * knn.k + j], knn.distances[i * knn.k + j]);
      for (let p = d.indptr[i]; p < d.indptr[i + 1]; p++) if (d.data[p] !== want.get(d.indices[p])) wrong++;
    }
    expect(wrong).toBe(0);
  });
});

describe("snnGraphCpu", () => {
  it("matches a direct set-intersection computation on a small random kNN", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const n = 60;
    const k = 6;
    const indices = new Int32Array(n * k);
    for (let i = 0; i < n; i++) {
      const set = [i];
      while (set.length < k) {
        const c = Math.floor(rand() * n);
        if (!set.includes(c)) set.push(c);
      }
      indices.set(set, i * k);
    }
    const prune = 1 / 15;
    const g = snnGraphCpu({ n, k, indices, distances: new Float32Array(n * k) }, prune);
    expectWellFormed(g, n);
    const got = new Map<number, number>();
    for (let r = 0; r < n; r++) for (let p = g.indptr[r]; p < g.indptr[r + 1]; p++) got.set(r * n + g.indices[p], g.data[p]);
    let expected = 0;
    for (let a = 0; a < n; a++) {
      const sa = new Set(indices.subarray(a * k, a * k + k));
      for (let b = 0; b < n; b++) {
        let s = 0;
        for (const v of indices.subarray(b * k, b * k + k)) if (sa.has(v)) s++;
        const w = s / (2 * k - s);
        if (s > 0 && w >= prune) {
          expected++;
          expect(got.get(a * n + b)).toBeCloseTo(w, 6);
        } else expect(got.has(a * n + b)).toBe(false);
      }
    }
    expect(got.size).toBe(expected);
    for (let i = 0; i < n; i++) expect(got.get(i * n + i)).toBe(1);
  });

  for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
    it(`equals Seurat's RNA_snn from Seurat's own kNN (${dataset})`, () => {
      const knn = readKnn(dataset, "seurat");
      expect(knn.k).toBe(20);
      const ref = readGraph(`${referenceDir(dataset, "seurat")}/snn_graph.tsv.gz`, knn.n);
      const g = snnGraphCpu(knn, 1 / 15);
      expectWellFormed(g, knn.n);
      expectSymmetric(g);
      const c = compareToReference(g, ref);
      console.log(`${dataset} SNN: nnz=${g.indptr[knn.n]} ref=${ref.size} missing=${c.missing} extra=${c.extra} maxAbs=${c.maxAbs.toExponential(2)}`);
      expect(c.missing).toBe(0);
      expect(c.extra).toBe(0);
      expect(c.maxAbs).toBeLessThan(1e-6);
    });
  }
});
