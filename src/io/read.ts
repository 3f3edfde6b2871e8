/**
 * One entry point for count matrices: a directory → 10x MTX, `*.h5` → 10x Cell Ranger HDF5,
 * `*.h5ad` → AnnData. Afterwards: an empty matrix is an InputError, and when the features have
 * several feature types, X keeps the "Gene Expression" rows and each other type (e.g.
 * "Antibody Capture") becomes `altExperiments.get(type)` over the same cells.
 */
import { statSync } from "node:fs";
import type { CellMatrix, CountCellMatrix } from "../core/cellMatrix.js";
import { subsetTable } from "../core/cellMatrix.js";
import { compactCounts, countsSubsetCols } from "../core/counts.js";
import { subsetCols } from "../core/csr.js";
import { InputError } from "./errors.js";
import { readTenxH5 } from "./h5.js";
import { readH5ad, readH5adCounts } from "./h5ad.js";
import { withHdf5Diagnostics } from "./h5util.js";
import { readTenxMtxDirAsync, readTenxMtxDirCounts } from "./mtx.js";

const ACCEPTED = "a 10x MTX directory (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz], barcodes.tsv[.gz]), a 10x Cell Ranger .h5 file, or an AnnData .h5ad file";

export async function readInput(path: string): Promise<CellMatrix> {
  const lower = path.toLowerCase();
  let m: CellMatrix;
  if (isDirectory(path)) m = await readTenxMtxDirAsync(path);
  else if (lower.endsWith(".h5ad")) m = await withHdf5Diagnostics(() => readH5ad(path));
  else if (lower.endsWith(".h5") || lower.endsWith(".hdf5")) m = await withHdf5Diagnostics(() => readTenxH5(path));
  else throw new InputError(path, `unrecognised input; expected ${ACCEPTED}`);
  checkNotEmpty(path, m.X);
  return splitFeatureTypes(m);
}

/**
 * readInput with the counts held compactly (CountMatrix), for inputs too large for a Csr.
 * MTX directories are streamed straight into it (readTenxMtxDirCounts), .h5ad through
 * readH5adCounts; .h5 is read as a Csr and then compacted, so it briefly needs both (12 B per
 * nonzero).
 */
export async function readInputCounts(path: string): Promise<CountCellMatrix> {
  const lower = path.toLowerCase();
  let m: CountCellMatrix;
  if (isDirectory(path)) m = await readTenxMtxDirCounts(path);
  else if (lower.endsWith(".h5ad")) m = await withHdf5Diagnostics(() => readH5adCounts(path));
  else if (lower.endsWith(".h5") || lower.endsWith(".hdf5")) m = compacted(await withHdf5Diagnostics(() => readTenxH5(path)));
  else throw new InputError(path, `unrecognised input; expected ${ACCEPTED}`);
  checkNotEmpty(path, m.X);
  return splitCountFeatureTypes(m);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (e) {
    throw new InputError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); expected ${ACCEPTED}`);
  }
}

function checkNotEmpty(path: string, X: { nRows: number; nCols: number }): void {
  if (X.nRows === 0 || X.nCols === 0) {
    throw new InputError(path, `empty matrix (${X.nRows} cells × ${X.nCols} features); expected at least one cell and one feature`);
  }
}

function compacted(m: CellMatrix): CountCellMatrix {
  const { X, altExperiments: _alt, ...rest } = m;
  return { ...rest, X: compactCounts(X) };
}

/** X keeps "Gene Expression" (or, without it, the first type in file order); other types move to altExperiments. */
export function splitFeatureTypes(m: CellMatrix): CellMatrix {
  const col = m.var.columns.get("feature_types");
  if (!col || col.kind !== "string") return m;
  const types = [...new Set(col.values)];
  if (types.length < 2) return m;
  const main = types.includes("Gene Expression") ? "Gene Expression" : types[0];
  const part = (t: string): CellMatrix => {
    const keep = Uint8Array.from(col.values, (v) => (v === t ? 1 : 0));
    return { X: subsetCols(m.X, keep), obs: m.obs, var: subsetTable(m.var, keep), source: m.source };
  };
  const out: CellMatrix = { ...part(main), altExperiments: new Map(types.filter((t) => t !== main).map((t) => [t, part(t)])) };
  if (m.note) out.note = m.note;
  return out;
}

/** splitFeatureTypes for a CountCellMatrix: the same choice of X and altExperiments. */
export function splitCountFeatureTypes(m: CountCellMatrix): CountCellMatrix {
  const col = m.var.columns.get("feature_types");
  if (!col || col.kind !== "string") return m;
  const types = [...new Set(col.values)];
  if (types.length < 2) return m;
  const main = types.includes("Gene Expression") ? "Gene Expression" : types[0];
  const part = (t: string): CountCellMatrix => {
    const keep = Uint8Array.from(col.values, (v) => (v === t ? 1 : 0));
    return { X: countsSubsetCols(m.X, keep), obs: m.obs, var: subsetTable(m.var, keep), source: m.source };
  };
  const out: CountCellMatrix = { ...part(main), altExperiments: new Map(types.filter((t) => t !== main).map((t) => [t, part(t)])) };
  if (m.note) out.note = m.note;
  return out;
}
