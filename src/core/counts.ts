/**
 * Raw counts held compactly: cells × features CSR whose column indices are uint16 when there are
 * at most 65,536 features and whose values are uint16 when every value is an integer in
 * [0, 65535] (else float32, exact below 2^24). A 10x matrix of 1e9 nonzeros takes 4 GB this way
 * instead of 8. Steps that need the standard Csr take row blocks of it (`countsRows`), so only a
 * block is ever widened. Row pointers are float64 (past 2^32 nonzeros).
 */
import type { Csr } from "./csr.js";

export interface CountMatrix {
  readonly kind: "counts";
  nRows: number;
  nCols: number;
  indptr: Float64Array;
  indices: Uint16Array | Uint32Array;
  data: Uint16Array | Float32Array;
}

export function isCountMatrix(m: object): m is CountMatrix {
  return (m as CountMatrix).kind === "counts";
}

/** True when every value is an integer in [0, 65535]. */
export function fitsUint16(values: ArrayLike<number>): boolean {
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (!(v >= 0 && v <= 65535 && Math.floor(v) === v)) return false;
  }
  return true;
}

export function indexArray(nCols: number, length: number): Uint16Array | Uint32Array {
  return nCols <= 65536 ? new Uint16Array(length) : new Uint32Array(length);
}

/** Exact compact copy of a counts Csr. */
export function compactCounts(X: Csr): CountMatrix {
  const nnz = X.indptr[X.nRows];
  const indices = indexArray(X.nCols, nnz);
  indices.set(X.indices.subarray(0, nnz));
  const data = fitsUint16(X.data.subarray(0, nnz)) ? new Uint16Array(nnz) : new Float32Array(nnz);
  data.set(X.data.subarray(0, nnz));
  return { kind: "counts", nRows: X.nRows, nCols: X.nCols, indptr: X.indptr.slice(), indices, data };
}

export function countsNnz(M: CountMatrix): number {
  return M.indptr[M.nRows];
}

/** Bytes held by the matrix's arrays. */
export function countsBytes(M: CountMatrix): number {
  return M.indptr.byteLength + M.indices.byteLength + M.data.byteLength;
}

/**
 * Rows [r0, r1) as a standard Csr (uint32 indices, float32 values). With `colMap`, column c
 * becomes colMap[c] (−1: dropped) in a matrix of `nColsOut` columns; colMap must be increasing
 * over kept columns so rows stay sorted.
 */
export function countsRows(M: CountMatrix, r0: number, r1: number, colMap?: Int32Array, nColsOut?: number): Csr {
  const a0 = M.indptr[r0];
  const nRows = r1 - r0;
  const indptr = new Float64Array(nRows + 1);
  if (!colMap) {
    const nnz = M.indptr[r1] - a0;
    for (let r = 0; r <= nRows; r++) indptr[r] = M.indptr[r0 + r] - a0;
    const indices = new Uint32Array(nnz);
    indices.set(M.indices.subarray(a0, a0 + nnz));
    const data = new Float32Array(nnz);
    data.set(M.data.subarray(a0, a0 + nnz));
    return { nRows, nCols: M.nCols, indptr, indices, data };
  }
  let nnz = 0;
  const end = M.indptr[r1];
  for (let k = a0; k < end; k++) if (colMap[M.indices[k]] >= 0) nnz++;
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  let o = 0;
  for (let r = 0; r < nRows; r++) {
    const b = M.indptr[r0 + r + 1];
    for (let k = M.indptr[r0 + r]; k < b; k++) {
      const c = colMap[M.indices[k]];
      if (c >= 0) {
        indices[o] = c;
        data[o++] = M.data[k];
      }
    }
    indptr[r + 1] = o;
  }
  return { nRows, nCols: nColsOut ?? M.nCols, indptr, indices, data };
}

export function countsToCsr(M: CountMatrix): Csr {
  return countsRows(M, 0, M.nRows);
}

/** Column map of a keep mask: kept columns renumbered in order, dropped ones −1. */
export function keepToColMap(keep: ArrayLike<number>): { colMap: Int32Array; nKept: number } {
  const colMap = new Int32Array(keep.length);
  let n = 0;
  for (let c = 0; c < keep.length; c++) colMap[c] = keep[c] ? n++ : -1;
  return { colMap, nKept: n };
}

/**
 * Keeps the masked rows and columns (null: all), renumbering columns, by compacting the arrays
 * in place (every write lands at or before its read), so no second copy is ever held. The
 * returned matrix views the same buffers; M must not be used afterwards.
 */
export function filterCountsInPlace(M: CountMatrix, keepRows: Uint8Array | null, keepCols: Uint8Array | null): CountMatrix {
  const colMap = keepCols ? keepToColMap(keepCols) : null;
  const { indptr, indices, data } = M;
  let o = 0;
  let rr = 0;
  let a = indptr[0];
  for (let r = 0; r < M.nRows; r++) {
    const b = indptr[r + 1];
    if (!keepRows || keepRows[r]) {
      if (colMap) {
        for (let k = a; k < b; k++) {
          const c = colMap.colMap[indices[k]];
          if (c >= 0) {
            indices[o] = c;
            data[o++] = data[k];
          }
        }
      } else {
        indices.copyWithin(o, a, b);
        data.copyWithin(o, a, b);
        o += b - a;
      }
      indptr[++rr] = o;
    }
    a = b;
  }
  indptr[0] = 0;
  return {
    kind: "counts",
    nRows: rr,
    nCols: colMap ? colMap.nKept : M.nCols,
    indptr: indptr.subarray(0, rr + 1),
    indices: indices.subarray(0, o),
    data: data.subarray(0, o),
  };
}

/** A copy keeping the masked columns (renumbered), e.g. to split feature types. */
export function countsSubsetCols(M: CountMatrix, keep: ArrayLike<number>): CountMatrix {
  const { colMap, nKept } = keepToColMap(keep);
  let nnz = 0;
  const total = countsNnz(M);
  for (let k = 0; k < total; k++) if (colMap[M.indices[k]] >= 0) nnz++;
  const indptr = new Float64Array(M.nRows + 1);
  const indices = indexArray(nKept, nnz);
  const data = M.data instanceof Uint16Array ? new Uint16Array(nnz) : new Float32Array(nnz);
  let o = 0;
  for (let r = 0; r < M.nRows; r++) {
    const b = M.indptr[r + 1];
    for (let k = M.indptr[r]; k < b; k++) {
      const c = colMap[M.indices[k]];
      if (c >= 0) {
        indices[o] = c;
        data[o++] = M.data[k];
      }
    }
    indptr[r + 1] = o;
  }
  return { kind: "counts", nRows: M.nRows, nCols: nKept, indptr, indices, data };
}

/** Consecutive row ranges [r0, r1) holding at most maxNnz nonzeros each (a longer row alone). */
export function rowRangesByNnz(indptr: Float64Array, nRows: number, maxNnz: number): [number, number][] {
  const out: [number, number][] = [];
  let r0 = 0;
  while (r0 < nRows) {
    let r1 = r0 + 1;
    while (r1 < nRows && indptr[r1 + 1] - indptr[r0] <= maxNnz) r1++;
    out.push([r0, r1]);
    r0 = r1;
  }
  return out;
}
