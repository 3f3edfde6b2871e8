import { describe, expect, it } from "vitest";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { spectralLayoutCpu } from "../src/ops/spectral.js";

/**
 * Path graph on n nodes, unit weights. D^-1·A has eigenvectors cos(πk·i/(n−1)) with eigenvalues
 * cos(πk/(n−1)), so M = D^-1/2·A·D^-1/2 has u_k(i) = √d_i·cos(πk·i/(n−1)): all distinct, and the
 * gap after the second one (k = 2) is small, as in a large kNN graph.
 */
function path(n: number): Csr {
  const indptr = new Float64Array(n + 1);
  const cols: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) cols.push(i - 1);
    if (i < n - 1) cols.push(i + 1);
    indptr[i + 1] = cols.length;
  }
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(cols), data: new Float32Array(cols.length).fill(1) };
}

/** |cos| of the angle between column c of the layout and the exact eigenvector u_{c+1}. */
function cosToExact(emb: Float64Array, n: number, c: number): number {
  let dot = 0;
  let nv = 0;
  let nu = 0;
  for (let i = 0; i < n; i++) {
    const u = Math.sqrt(i === 0 || i === n - 1 ? 1 : 2) * Math.cos((Math.PI * (c + 1) * i) / (n - 1));
    const v = emb[i * 2 + c];
    dot += u * v;
    nv += v * v;
    nu += u * u;
  }
  return Math.abs(dot) / Math.sqrt(nv * nu);
}

describe("spectral layout: large-graph solver settings (threshold lowered by option)", () => {
  const n = 300; // eigenvalues 2..4: cos(π/299), cos(2π/299), cos(3π/299); gaps ~1e-4
  const g = path(n);

  it("default settings: the exact eigenvectors to high accuracy", () => {
    const emb = spectralLayoutCpu(g, 2, new Rng(1));
    for (const c of [0, 1]) expect(cosToExact(emb, n, c)).toBeGreaterThan(1 - 1e-9);
  });

  it("large-graph settings (tol 1e-4, capped restarts): the same eigenvectors, to the looser tolerance", () => {
    const emb = spectralLayoutCpu(g, 2, new Rng(1), { largeGraph: 100 });
    for (const c of [0, 1]) expect(cosToExact(emb, n, c)).toBeGreaterThan(0.99);
    // The option took effect: the solver stopped earlier than with the default settings.
    const exact = spectralLayoutCpu(g, 2, new Rng(1));
    expect(Buffer.from(emb.buffer).equals(Buffer.from(exact.buffer))).toBe(false);
    // The two columns are distinct directions, not the same vector twice.
    let dot = 0;
    for (let i = 0; i < n; i++) dot += emb[2 * i] * emb[2 * i + 1];
    expect(Math.abs(dot)).toBeLessThan(1e-6);
  });

  it("restart cap reached: unconverged Ritz vectors are returned, deterministic and orthogonal to the trivial vector", () => {
    const a = spectralLayoutCpu(g, 2, new Rng(1), { largeGraph: 100, largeMaxRestarts: 0 });
    const b = spectralLayoutCpu(g, 2, new Rng(2), { largeGraph: 100, largeMaxRestarts: 0 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    for (const c of [0, 1]) {
      let s = 0;
      let norm = 0;
      for (let i = 0; i < n; i++) {
        s += Math.sqrt(i === 0 || i === n - 1 ? 1 : 2) * a[i * 2 + c]; // · D^1/2·1
        norm += a[i * 2 + c] ** 2;
      }
      expect(Number.isFinite(norm) && norm > 0.5).toBe(true);
      expect(Math.abs(s) / Math.sqrt((2 * n - 2) * norm)).toBeLessThan(1e-8);
    }
  });
});
