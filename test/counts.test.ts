/** Compact counts (src/core/counts.ts) against the plain Csr operations they stand in for. */
import { describe, expect, it } from "vitest";
import {
  compactCounts,
  countsRows,
  countsSubsetCols,
  countsToCsr,
  filterCountsInPlace,
  keepToColMap,
  rowRangesByNnz,
} from "../src/core/counts.js";
import { subsetCols, subsetRows, type Csr } from "../src/core/csr.js";
import { randomCsr } from "./gpu/util.js";

const same = (a: Csr, b: Csr) => {
  expect(a.nRows).toBe(b.nRows);
  expect(a.nCols).toBe(b.nCols);
  expect(Array.from(a.indptr)).toEqual(Array.from(b.indptr));
  expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
  expect(Array.from(a.data)).toEqual(Array.from(b.data));
};

describe("compact counts", () => {
  const X = randomCsr(300, 90, 7, { density: 0.2, emptyRows: 0.1 });

  it("stores integer counts as uint16 and widens back exactly", () => {
    const M = compactCounts(X);
    expect(M.indices).toBeInstanceOf(Uint16Array);
    expect(M.data).toBeInstanceOf(Uint16Array);
    same(countsToCsr(M), X);
  });

  it("keeps float32 values when a count does not fit uint16 or is fractional", () => {
    for (const v of [70000, 2.5, -1]) {
      const Y: Csr = { ...X, data: X.data.slice() };
      Y.data[5] = v;
      const M = compactCounts(Y);
      expect(M.data).toBeInstanceOf(Float32Array);
      same(countsToCsr(M), Y);
    }
  });

  it("uses uint32 indices beyond 65,536 columns", () => {
    const wide: Csr = { nRows: 1, nCols: 70000, indptr: Float64Array.from([0, 2]), indices: Uint32Array.from([3, 69999]), data: Float32Array.from([1, 2]) };
    const M = compactCounts(wide);
    expect(M.indices).toBeInstanceOf(Uint32Array);
    same(countsToCsr(M), wide);
  });

  it("filters rows and columns in place as subsetRows ∘ subsetCols", () => {
    const r = (s: number) => () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const u = r(3);
    for (const [pr, pc] of [[0.5, 0.5], [1, 0.3], [0.2, 1], [0, 1]]) {
      const keepRows = Uint8Array.from({ length: X.nRows }, () => (u() < pr ? 1 : 0));
      const keepCols = Uint8Array.from({ length: X.nCols }, () => (u() < pc ? 1 : 0));
      const M = filterCountsInPlace(compactCounts(X), keepRows, keepCols);
      same(countsToCsr(M), subsetCols(subsetRows(X, keepRows), keepCols));
      same(countsToCsr(countsSubsetCols(compactCounts(X), keepCols)), subsetCols(X, keepCols));
    }
  });

  it("widens any row block, with or without a column map", () => {
    const M = compactCounts(X);
    const keep = Uint8Array.from({ length: X.nCols }, (_, j) => (j % 3 === 0 ? 1 : 0));
    const { colMap, nKept } = keepToColMap(keep);
    const sub = subsetCols(X, keep);
    for (const [r0, r1] of [[0, 1], [17, 160], [299, 300], [0, 300]]) {
      const rows = Uint8Array.from({ length: X.nRows }, (_, i) => (i >= r0 && i < r1 ? 1 : 0));
      same(countsRows(M, r0, r1), subsetRows(X, rows));
      same(countsRows(M, r0, r1, colMap, nKept), subsetRows(sub, rows));
    }
  });

  it("splits rows into ranges of bounded nonzeros that cover every row once", () => {
    for (const maxNnz of [1, 10, 500, 1e9]) {
      const ranges = rowRangesByNnz(X.indptr, X.nRows, maxNnz);
      expect(ranges[0][0]).toBe(0);
      expect(ranges[ranges.length - 1][1]).toBe(X.nRows);
      for (let i = 0; i < ranges.length; i++) {
        const [a, b] = ranges[i];
        expect(b).toBeGreaterThan(a);
        if (i > 0) expect(a).toBe(ranges[i - 1][1]);
        if (b - a > 1) expect(X.indptr[b] - X.indptr[a]).toBeLessThanOrEqual(maxNnz);
      }
    }
  });
});
