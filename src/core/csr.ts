/**
 * Compressed sparse row matrix. Rows are cells, columns are features, unless a function says
 * otherwise. `indptr` is a Float64Array so row pointers can pass 2^32 nonzeros; column indices
 * are uint32 and values float32, which is exact for counts below 2^24.
 * Within a row, column indices are strictly increasing.
 */
export interface Csr {
  nRows: number;
  nCols: number;
  indptr: Float64Array;
  indices: Uint32Array;
  data: Float32Array;
}

export function csrNnz(m: Csr): number {
  return m.indptr[m.nRows];
}

/** Keep the rows whose mask entry is non-zero, in order. */
export function subsetRows(m: Csr, keep: ArrayLike<number | boolean>): Csr {
  let nRows = 0;
  let nnz = 0;
  for (let r = 0; r < m.nRows; r++) {
    if (keep[r]) {
      nRows++;
      nnz += m.indptr[r + 1] - m.indptr[r];
    }
  }
  const indptr = new Float64Array(nRows + 1);
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  let o = 0;
  let rr = 0;
  for (let r = 0; r < m.nRows; r++) {
    if (!keep[r]) continue;
    const a = m.indptr[r];
    const b = m.indptr[r + 1];
    indices.set(m.indices.subarray(a, b), o);
    data.set(m.data.subarray(a, b), o);
    o += b - a;
    indptr[++rr] = o;
  }
  return { nRows, nCols: m.nCols, indptr, indices, data };
}

/** Keep the columns whose mask entry is non-zero, renumbered in order. */
export function subsetCols(m: Csr, keep: ArrayLike<number | boolean>): Csr {
  const newIndex = new Int32Array(m.nCols).fill(-1);
  let nCols = 0;
  for (let c = 0; c < m.nCols; c++) if (keep[c]) newIndex[c] = nCols++;
  let nnz = 0;
  const total = csrNnz(m);
  for (let k = 0; k < total; k++) if (newIndex[m.indices[k]] >= 0) nnz++;
  const indptr = new Float64Array(m.nRows + 1);
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  let o = 0;
  for (let r = 0; r < m.nRows; r++) {
    const b = m.indptr[r + 1];
    for (let k = m.indptr[r]; k < b; k++) {
      const c = newIndex[m.indices[k]];
      if (c >= 0) {
        indices[o] = c;
        data[o++] = m.data[k];
      }
    }
    indptr[r + 1] = o;
  }
  return { nRows: m.nRows, nCols, indptr, indices, data };
}

/** Transpose (CSR of Aᵀ, i.e. the CSC view of A). Stable: row order kept within each column. */
export function transpose(m: Csr): Csr {
  const nnz = csrNnz(m);
  const counts = new Float64Array(m.nCols + 1);
  for (let k = 0; k < nnz; k++) counts[m.indices[k] + 1]++;
  for (let c = 0; c < m.nCols; c++) counts[c + 1] += counts[c];
  const indptr = Float64Array.from(counts);
  const next = Float64Array.from(counts.subarray(0, m.nCols));
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  for (let r = 0; r < m.nRows; r++) {
    const b = m.indptr[r + 1];
    for (let k = m.indptr[r]; k < b; k++) {
      const c = m.indices[k];
      const o = next[c]++;
      indices[o] = r;
      data[o] = m.data[k];
    }
  }
  return { nRows: m.nCols, nCols: m.nRows, indptr, indices, data };
}

/** Dense row-major copy; for tests and small matrices only. */
export function toDense(m: Csr): Float64Array {
  const out = new Float64Array(m.nRows * m.nCols);
  for (let r = 0; r < m.nRows; r++) {
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) out[r * m.nCols + m.indices[k]] = m.data[k];
  }
  return out;
}

/** CSR from a dense row-major array; exact zeros are not stored. */
export function fromDense(dense: ArrayLike<number>, nRows: number, nCols: number): Csr {
  let nnz = 0;
  for (let i = 0; i < nRows * nCols; i++) if (dense[i] !== 0) nnz++;
  const indptr = new Float64Array(nRows + 1);
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  let o = 0;
  for (let r = 0; r < nRows; r++) {
    for (let c = 0; c < nCols; c++) {
      const v = dense[r * nCols + c];
      if (v !== 0) {
        indices[o] = c;
        data[o++] = v;
      }
    }
    indptr[r + 1] = o;
  }
  return { nRows, nCols, indptr, indices, data };
}
