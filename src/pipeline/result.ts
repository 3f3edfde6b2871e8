/**
 * What an analysis produces, in AnnData's places. The h5ad writer writes exactly this;
 * the Arrow writer takes the per-cell part.
 */
import type { Table } from "../core/cellMatrix.js";
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

export interface AnalysisResult {
  /** Log-normalized values, cells × all kept features. */
  X: Csr;
  layers: Map<string, Csr>;
  obs: Table;
  var: Table;
  obsm: Map<string, DenseMatrix>;
  varm: Map<string, DenseMatrix>;
  obsp: Map<string, Csr>;
  uns: { [key: string]: UnsValue };
}
