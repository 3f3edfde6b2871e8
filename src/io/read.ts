/**
 * One entry point for count matrices: a directory → 10x MTX, `*.h5` → 10x Cell Ranger HDF5,
 * `*.h5ad` → AnnData. Afterwards: an empty matrix is an InputError, and when the features have
 * several feature types, X keeps the "Gene Expression" rows and each other type (e.g.
 * "Antibody Capture") becomes `altExperiments.get(type)` over the same cells.
 */
import { statSync } from "node:fs";
import type { CellMatrix } from "../core/cellMatrix.js";
import { subsetTable } from "../core/cellMatrix.js";
import { subsetCols } from "../core/csr.js";
import { InputError } from "./errors.js";
import { readTenxH5 } from "./h5.js";
import { readH5ad } from "./h5ad.js";
import { withHdf5Diagnostics } from "./h5util.js";
import { readTenxMtxDirAsync } from "./mtx.js";

const ACCEPTED = "a 10x MTX directory (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz], barcodes.tsv[.gz]), a 10x Cell Ranger .h5 file, or an AnnData .h5ad file";

export async function readInput(path: string): Promise<CellMatrix> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new InputError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); expected ${ACCEPTED}`);
  }
  const lower = path.toLowerCase();
  let m: CellMatrix;
  if (isDir) m = await readTenxMtxDirAsync(path);
  else if (lower.endsWith(".h5ad")) m = await withHdf5Diagnostics(() => readH5ad(path));
  else if (lower.endsWith(".h5") || lower.endsWith(".hdf5")) m = await withHdf5Diagnostics(() => readTenxH5(path));
  else throw new InputError(path, `unrecognised input; expected ${ACCEPTED}`);
  if (m.X.nRows === 0 || m.X.nCols === 0) {
    throw new InputError(path, `empty matrix (${m.X.nRows} cells × ${m.X.nCols} features); expected at least one cell and one feature`);
  }
  return splitFeatureTypes(m);
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
