import { describe, expect, it } from "vitest";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { trustworthiness } from "../src/metrics/index.js";
import { connectedComponents, spectralLayoutCpu } from "../src/ops/spectral.js";
import { findAbParams, umapLayoutCpu } from "../src/ops/umap.js";
import { readMatrix, readTsv, referenceDir } from "./helpers/reference.js";

/** The reference's obsp['connectivities'] (i, j, weight, both directions) as CSR. */
function loadConnectivities(dataset: string, n: number): Csr {
  const t = readTsv(`${referenceDir(dataset)}/connectivities.tsv.gz`);
  const I = t.num("i");
  const J = t.num("j");
  const W = t.num("weight");
  const indptr = new Float64Array(n + 1);
  for (const i of I) indptr[i + 1]++;
  for (let r = 0; r < n; r++) indptr[r + 1] += indptr[r];
  const order = Array.from(I.keys()).sort((p, q) => I[p] - I[q] || J[p] - J[q]);
  return {
    nRows: n,
    nCols: n,
    indptr,
    indices: Uint32Array.from(order, (p) => J[p]),
    data: Float32Array.from(order, (p) => W[p]),
  };
}

/** Symmetric kNN graph (union, Gaussian weights) of random 2-D points; offset shifts node ids. */
function pointGraph(n: number, k: number, seed: number): { i: number[]; j: number[]; w: number[] } {
  const rng = new Rng(seed);
  const x = Float64Array.from({ length: 2 * n }, () => rng.nextFloat());
  const edges = new Map<string, number>();
  for (let p = 0; p < n; p++) {
    const d = Array.from({ length: n }, (_, q) => [(x[2 * p] - x[2 * q]) ** 2 + (x[2 * p + 1] - x[2 * q + 1]) ** 2, q]);
    d.sort((u, v) => u[0] - v[0]);
    for (let r = 1; r <= k; r++) {
      const [d2, q] = d[r];
      const w = Math.exp(-d2 * 50);
      edges.set(`${p},${q}`, w);
      edges.set(`${q},${p}`, w);
    }
  }
  const out = { i: [] as number[], j: [] as number[], w: [] as number[] };
  for (const [key, w] of edges) {
    const [p, q] = key.split(",").map(Number);
    out.i.push(p);
    out.j.push(q);
    out.w.push(w);
  }
  return out;
}

function toCsr(n: number, parts: { i: number[]; j: number[]; w: number[]; offset: number }[]): Csr {
  const trip: [number, number, number][] = [];
  for (const p of parts) p.i.forEach((i, t) => trip.push([i + p.offset, p.j[t] + p.offset, p.w[t]]));
  trip.sort((u, v) => u[0] - v[0] || u[1] - v[1]);
  const indptr = new Float64Array(n + 1);
  for (const [i] of trip) indptr[i + 1]++;
  for (let r = 0; r < n; r++) indptr[r + 1] += indptr[r];
  return {
    nRows: n,
    nCols: n,
    indptr,
    indices: Uint32Array.from(trip, (t) => t[1]),
    data: Float32Array.from(trip, (t) => t[2]),
  };
}

/** Number of eigenvalues of the dense symmetric matrix A (n×n) above mu: Sylvester inertia of mu·I − A. */
function countAbove(A: Float64Array, n: number, mu: number): number {
  const m = Float64Array.from(A, (v) => -v);
  for (let i = 0; i < n; i++) m[i * n + i] += mu;
  let negative = 0;
  for (let p = 0; p < n; p++) {
    const piv = m[p * n + p];
    if (piv < 0) negative++;
    for (let r = p + 1; r < n; r++) {
      const f = m[r * n + p] / piv;
      for (let c = p; c < n; c++) m[r * n + c] -= f * m[p * n + c];
    }
  }
  return negative;
}

function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe("findAbParams", () => {
  it("matches umap-learn's find_ab_params", () => {
    const info = readTsv(`${referenceDir("pbmc3k")}/info.tsv`);
    const value = (key: string) => Number(info.rows.find((r) => r[0] === key)![1]);
    const ab = findAbParams(1, 0.5);
    expect(Math.abs(ab.a / value("umap_a") - 1)).toBeLessThan(1e-3);
    expect(Math.abs(ab.b / value("umap_b") - 1)).toBeLessThan(1e-3);
    // umap-learn's defaults for spread 1, min_dist 0.1 (as quoted by umap-js's test suite).
    const d = findAbParams(1, 0.1);
    expect(Math.abs(d.a / 1.5769434603113077 - 1)).toBeLessThan(1e-3);
    expect(Math.abs(d.b / 0.8950608779109733 - 1)).toBeLessThan(1e-3);
  });
});

describe("spectralLayoutCpu", () => {
  it("returns eigenvectors 2 and 3 of D^-1/2 A D^-1/2 on a connected graph", () => {
    const n = 150;
    const g = toCsr(n, [{ ...pointGraph(n, 6, 11), offset: 0 }]);
    expect(connectedComponents(g).count).toBe(1);
    const A = new Float64Array(n * n);
    const deg = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let k = g.indptr[i]; k < g.indptr[i + 1]; k++) deg[i] += g.data[k];
    }
    for (let i = 0; i < n; i++) {
      for (let k = g.indptr[i]; k < g.indptr[i + 1]; k++) A[i * n + g.indices[k]] = g.data[k] / Math.sqrt(deg[i] * deg[g.indices[k]]);
    }
    const emb = spectralLayoutCpu(g, 2, new Rng(0));
    const lambda: number[] = [];
    for (let c = 0; c < 2; c++) {
      const v = Float64Array.from({ length: n }, (_, i) => emb[i * 2 + c]);
      const Av = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Av[i] += A[i * n + j] * v[j];
      let vv = 0;
      let vAv = 0;
      let trivial = 0;
      for (let i = 0; i < n; i++) {
        vv += v[i] * v[i];
        vAv += v[i] * Av[i];
        trivial += v[i] * Math.sqrt(deg[i]);
      }
      const lam = vAv / vv;
      let res = 0;
      for (let i = 0; i < n; i++) res += (Av[i] - lam * v[i]) ** 2;
      expect(Math.sqrt(res / vv)).toBeLessThan(1e-6);
      expect(Math.abs(trivial) / Math.sqrt(vv)).toBeLessThan(1e-8);
      lambda.push(lam);
    }
    // Exactly 1 (trivial) + 1 eigenvalues lie above λ2, and 3 at or above λ3: they are the 2nd and 3rd.
    expect(lambda[0]).toBeGreaterThan(lambda[1] + 1e-4);
    expect(countAbove(A, n, lambda[0] - 1e-7)).toBe(2);
    expect(countAbove(A, n, lambda[0] + 1e-7)).toBe(1);
    expect(countAbove(A, n, lambda[1] - 1e-7)).toBe(3);
    expect(countAbove(A, n, lambda[1] + 1e-7)).toBe(2);
  });

  it("lays out a disconnected graph per component around umap's anchors", () => {
    const a = pointGraph(60, 5, 3);
    const b = pointGraph(40, 5, 4);
    const tiny = { i: [0, 1], j: [1, 0], w: [1, 1] };
    const g = toCsr(102, [
      { ...a, offset: 0 },
      { ...b, offset: 60 },
      { ...tiny, offset: 100 },
    ]);
    const { count, labels } = connectedComponents(g);
    expect(count).toBe(3);
    const emb = spectralLayoutCpu(g, 2, new Rng(0));
    // umap's meta-embedding for 3 components: (1,0), (0,1), (-1,0); each within half the nearest
    // anchor distance (√2 / 2) of its own anchor.
    const anchors = [
      [1, 0],
      [0, 1],
      [-1, 0],
    ];
    for (let i = 0; i < 102; i++) {
      const [ax, ay] = anchors[labels[i]];
      expect(Math.abs(emb[2 * i] - ax)).toBeLessThanOrEqual(Math.SQRT2 / 2 + 1e-12);
      expect(Math.abs(emb[2 * i + 1] - ay)).toBeLessThanOrEqual(Math.SQRT2 / 2 + 1e-12);
    }
    const u1 = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 3, nEpochs: 100 });
    const u2 = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 3, nEpochs: 100 });
    expect(u1.every(Number.isFinite)).toBe(true);
    expect(sameBytes(u1, u2)).toBe(true);
    const r = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 3, nEpochs: 100, init: "random" });
    expect(r.every(Number.isFinite)).toBe(true);
  });
});

describe("umapLayoutCpu on reference connectivities", () => {
  it("pbmc3k: trustworthiness as umap-learn's, same bytes for the same seed", () => {
    const pca = readMatrix(`${referenceDir("pbmc3k")}/pca.tsv.gz`, "PC_");
    const ref = readMatrix(`${referenceDir("pbmc3k")}/umap.tsv.gz`, "UMAP_");
    const g = loadConnectivities("pbmc3k", pca.n);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const emb = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 0 });
    const cpu = process.cpuUsage(c0).user / 1000;
    console.log(`pbmc3k umapLayoutCpu (2638 cells, 500 epochs): ${(performance.now() - t0).toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU`);
    expect(emb.length).toBe(pca.n * 2);
    expect(emb.every(Number.isFinite)).toBe(true);
    const ours = trustworthiness(pca.data, 50, emb, 2, pca.n, 15);
    const theirs = trustworthiness(pca.data, 50, ref.data, 2, pca.n, 15);
    console.log(`pbmc3k trustworthiness@15: ours ${ours.toFixed(4)}, umap-learn reference ${theirs.toFixed(4)}`);
    expect(Math.abs(ours - theirs)).toBeLessThan(0.02);

    // Determinism on shorter runs (the full run costs seconds): same seed => same bytes.
    const short0 = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 0, nEpochs: 100 });
    const again = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 0, nEpochs: 100 });
    const short1 = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 1, nEpochs: 100 });
    expect(sameBytes(short0, again)).toBe(true);
    expect(sameBytes(short0, short1)).toBe(false);
  });

  it("kang2018_ctrl_5donors: trustworthiness as umap-learn's (2,000-cell subsample for the metric)", () => {
    const dataset = "kang2018_ctrl_5donors";
    const pca = readMatrix(`${referenceDir(dataset)}/pca.tsv.gz`, "PC_");
    const ref = readMatrix(`${referenceDir(dataset)}/umap.tsv.gz`, "UMAP_");
    const g = loadConnectivities(dataset, pca.n);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const emb = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 0 });
    const cpu = process.cpuUsage(c0).user / 1000;
    console.log(`${dataset} umapLayoutCpu (${pca.n} cells, 500 epochs): ${(performance.now() - t0).toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU`);
    // Same evenly spaced subsample of cells for both embeddings.
    const m = 2000;
    const pick = Array.from({ length: m }, (_, s) => Math.floor((s * pca.n) / m));
    const sub = (x: ArrayLike<number>, d: number) => {
      const o = new Float64Array(m * d);
      pick.forEach((i, r) => {
        for (let c = 0; c < d; c++) o[r * d + c] = x[i * d + c];
      });
      return o;
    };
    const X = sub(pca.data, 50);
    const ours = trustworthiness(X, 50, sub(emb, 2), 2, m, 15);
    const theirs = trustworthiness(X, 50, sub(ref.data, 2), 2, m, 15);
    console.log(`${dataset} trustworthiness@15 (subsample): ours ${ours.toFixed(4)}, umap-learn reference ${theirs.toFixed(4)}`);
    expect(Math.abs(ours - theirs)).toBeLessThan(0.02);
  });
});
