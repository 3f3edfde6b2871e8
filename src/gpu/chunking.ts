/**
 * Row chunking of a CSR matrix so that no storage binding exceeds maxStorageBufferBindingSize.
 * Host row pointers are float64 (they may pass 2^32); each chunk's pointers are rebased to the
 * chunk's first nonzero and sent as u32, which the binding limit (< 4 GiB) keeps exact.
 */
import type { Csr } from "../core/csr.js";
import { GpuError, type Gpu } from "./device.js";

export interface RowChunk {
  rowStart: number;
  rowEnd: number;
  nnzStart: number;
  nnzEnd: number;
}

/**
 * Consecutive row ranges covering all rows, each with at most maxBytes / bytesPerNnz nonzeros and
 * at most maxBytes / bytesPerRow − 1 rows (the +1 is the row-pointer array's extra entry).
 * A matrix with no rows gives no chunks. Throws if a single row alone is too large.
 */
export function rowChunks(indptr: Float64Array, nRows: number, maxBytes: number, bytesPerNnz = 4, bytesPerRow = 4): RowChunk[] {
  const maxNnz = Math.floor(maxBytes / bytesPerNnz);
  const maxRows = Math.floor(maxBytes / bytesPerRow) - 1;
  if (maxRows < 1) throw new GpuError(`binding limit ${maxBytes} B cannot hold even one row`);
  const chunks: RowChunk[] = [];
  let r = 0;
  while (r < nRows) {
    const start = r;
    const nnzStart = indptr[r];
    if (indptr[r + 1] - nnzStart > maxNnz) {
      throw new GpuError(`row ${r} has ${indptr[r + 1] - nnzStart} nonzeros, more than one ${maxBytes}-byte binding holds`);
    }
    while (r < nRows && r - start < maxRows && indptr[r + 1] - nnzStart <= maxNnz) r++;
    chunks.push({ rowStart: start, rowEnd: r, nnzStart, nnzEnd: indptr[r] });
  }
  return chunks;
}

/** The chunk's row pointers rebased to its first nonzero, as u32 (nRows + 1 entries). */
export function chunkIndptr(indptr: Float64Array, c: RowChunk): Uint32Array {
  const out = new Uint32Array(c.rowEnd - c.rowStart + 1);
  for (let r = c.rowStart; r <= c.rowEnd; r++) out[r - c.rowStart] = indptr[r] - c.nnzStart;
  return out;
}

/** A CSR row chunk resident on the device: u32 row pointers, u32 column indices, f32 values. */
export interface GpuCsrChunk extends RowChunk {
  nRows: number;
  nnz: number;
  indptr: GPUBuffer;
  indices: GPUBuffer;
  data: GPUBuffer;
}

export function uploadCsrChunk(gpu: Gpu, X: Csr, c: RowChunk): GpuCsrChunk {
  return {
    ...c,
    nRows: c.rowEnd - c.rowStart,
    nnz: c.nnzEnd - c.nnzStart,
    indptr: gpu.upload(chunkIndptr(X.indptr, c), "csr.indptr"),
    indices: gpu.upload(X.indices.subarray(c.nnzStart, c.nnzEnd), "csr.indices"),
    data: gpu.upload(X.data.subarray(c.nnzStart, c.nnzEnd), "csr.data", GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC),
  };
}

export function destroyCsrChunk(c: GpuCsrChunk): void {
  c.indptr.destroy();
  c.indices.destroy();
  c.data.destroy();
}

/** Chunks of X sized for this Gpu's binding limit (per-row outputs of bytesPerRow bytes). */
export function csrChunks(gpu: Gpu, X: Csr, bytesPerRow = 4): RowChunk[] {
  return rowChunks(X.indptr, X.nRows, gpu.limits.maxStorageBufferBindingSize, 4, bytesPerRow);
}
