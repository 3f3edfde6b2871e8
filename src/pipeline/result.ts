/**
 * What an analysis produces, in AnnData's places. The h5ad writer writes exactly this;
 * the Arrow writer takes the per-cell part.
 */
import type { Table } from "../core/cellMatrix.js";
import type { CountMatrix } from "../core/counts.js";
import type { Csr } from "../core/csr.js";

/** A value stored under `uns`: nested dicts, strings, numbers, arrays. */
export type UnsValue =
  | string
  | number
  | boolean
  | string[]
  | Float64Array
  | Float32Array
  | Int32Array
  | { [key: string]: UnsValue }
  /** A structured table stored as a numpy record array (rank_genes_groups' names/scores/…). */
  | { recarray: { fields: string[]; columns: (string[] | Float32Array | Float64Array)[] } };

export interface DenseMatrix {
  nRows: number;
  nCols: number;
  /** Row-major. */
  data: Float32Array | Float64Array;
}

/**
 * A cells × features sparse matrix too large to hold whole, produced one block of rows at a time
 * (in order; each block a Csr with its own indptr starting at 0). `nnz` is the total.
 */
export interface RowBlocks {
  readonly kind: "rowBlocks";
  nRows: number;
  nCols: number;
  nnz: number;
  blocks(): Iterable<Csr>;
}

/** Any of the sparse forms a result may hold; the writer stores each as a CSR matrix (float32 values). */
export type SparseOut = Csr | CountMatrix | RowBlocks;

export interface AnalysisResult {
  /** Log-normalized values, cells × all kept features. */
  X: SparseOut;
  layers: Map<string, SparseOut>;
  obs: Table;
  var: Table;
  obsm: Map<string, DenseMatrix>;
  varm: Map<string, DenseMatrix>;
  obsp: Map<string, Csr>;
  uns: { [key: string]: UnsValue };
}
