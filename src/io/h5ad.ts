/**
 * AnnData .h5ad reader and writer over h5wasm.
 *
 * readH5ad: X as csr_matrix, csc_matrix (or the pre-0.7 h5sparse_format attribute) or a dense
 * 2-D array (readH5adCounts: the same, held as a CountMatrix, CSR streamed in slices); obs/var dataframes with their index and columns, categoricals in both the
 * `categorical` 0.2.0 group encoding and the `dataframe` 0.1.0 `categories`-attribute encoding,
 * nullable integer/boolean groups, h5py bool enums. Counts come from `layers/counts` when it
 * exists (said so in `note`), else from X; either way they must be raw counts
 * (non-negative integers), else InputError "expected raw counts".
 *
 * writeH5ad: an AnalysisResult in scanpy's places, readable by anndata 0.8 (Debian bookworm).
 * X and layers may be a Csr, a CountMatrix or RowBlocks; the last two are streamed into
 * full-size datasets in bounded slices (1e9 nonzeros never held as float32 + int32 copies).
 * Deliberate differences from what anndata itself writes, forced by h5wasm 0.10.3 (no HDF5
 * enum types, no variable-length strings inside compound types):
 * - obs/var use the `dataframe` 0.1.0 layout (categoricals as codes with a `categories`
 *   attribute pointing at `__categories/<col>`), because anndata 0.8 cannot read a
 *   `categorical` 0.2.0 group whose `ordered` attribute is not an HDF5 bool enum.
 * - bool columns are uint8 0/1 (anndata returns uint8); they carry an extra attribute
 *   `cellgpu-kind = "bool"` so readH5ad gives them back as bool. Bool uns values are uint8 scalars.
 * - uns record arrays (rank_genes_groups) are `rec-array` compound datasets whose string fields
 *   are fixed-length ASCII (anndata writes vlen UTF-8). If a string field holds non-ASCII text,
 *   which anndata 0.8 cannot decode from a fixed-length field, the record array is written as
 *   a dict of per-field arrays instead.
 * The file is written to a temporary name in the same directory and renamed on success.
 */
import { renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import h5wasm, { Dataset, Group } from "h5wasm/node";
import type { CellMatrix, Column, CountCellMatrix, Table } from "../core/cellMatrix.js";
import { makeUnique } from "../core/cellMatrix.js";
import type { CountMatrix } from "../core/counts.js";
import { compactCounts, fitsUint16, indexArray } from "../core/counts.js";
import type { Csr } from "../core/csr.js";
import { transpose } from "../core/csr.js";
import type { AnalysisResult, DenseMatrix, SparseOut, UnsValue } from "../pipeline/result.js";
import { InputError } from "./errors.js";
import {
  H5_PIECE,
  attr,
  attrNumbers,
  attrString,
  countsChecker,
  errText,
  h5get,
  isStringDataset,
  needDataset,
  openH5,
  readCompressed,
  readNumbers,
  readStrings,
  checkCompressedShape,
  resolveRef,
  sortRows,
} from "./h5util.js";

// ---------------------------------------------------------------- reading

export async function readH5ad(path: string): Promise<CellMatrix> {
  return readH5adWith(path, (o, nObs, nVar, hint) =>
    readMatrix(path, o, nObs, nVar, hint, (g, check) => readCompressed(path, g, nObs, nVar, check), (m) => m),
  );
}

/**
 * readH5ad with the counts held compactly (CountMatrix): the same choice of matrix, note and
 * errors, but a CSR matrix is read a slice at a time straight into uint16/uint32 indices and
 * uint16/float32 values, so 1e9 nonzeros never need a full float32 + uint32 copy. CSC and dense
 * storage are read whole as readH5ad does and then compacted: they need a transpose or a scan
 * anyway, and large files written by anndata/scanpy are CSR.
 */
export async function readH5adCounts(path: string): Promise<CountCellMatrix> {
  return readH5adWith(path, (o, nObs, nVar, hint) =>
    readMatrix(path, o, nObs, nVar, hint, (g, check) => readCompressedCounts(path, g, nObs, nVar, check), compactCounts),
  );
}

type Check = (piece: ArrayLike<number>, offset: number) => void;

async function readH5adWith<M>(
  path: string,
  readX: (o: Dataset | Group, nObs: number, nVar: number, hint: string) => M,
): Promise<{ X: M; obs: Table; var: Table; source: string; note?: string }> {
  const f = await openH5(path);
  try {
    const obs = readDataframe(path, f, "obs");
    const vt = readDataframe(path, f, "var");
    const nObs = obs.index.length;
    const nVar = vt.index.length;
    const layerCounts = h5get(path, f, "layers/counts");
    const X0 = h5get(path, f, "X");
    let X: M;
    let note: string | undefined;
    if (layerCounts) {
      X = readX(layerCounts, nObs, nVar, "");
      note = "counts taken from layers/counts (X ignored)";
    } else if (X0) {
      X = readX(X0, nObs, nVar, " (X holds no raw counts and there is no layers/counts)");
    } else {
      throw new InputError(path, "no X matrix and no layers/counts (expected a dataset or group at '/X')");
    }
    const seen = new Map<string, number>();
    obs.index.forEach((b, i) => {
      const prev = seen.get(b);
      if (prev !== undefined) throw new InputError(path, `'/obs' index entry ${i}: duplicate cell name '${b}' (first at entry ${prev})`);
      seen.set(b, i);
    });
    const ids = vt.columns.get("gene_ids");
    const types = vt.columns.get("feature_types");
    vt.columns.set("gene_ids", { kind: "string", values: ids ? columnStrings(ids) : vt.index.slice() });
    vt.columns.set("feature_types", { kind: "string", values: types ? columnStrings(types) : vt.index.map(() => "Gene Expression") });
    vt.index = makeUnique(vt.index);
    const out: { X: M; obs: Table; var: Table; source: string; note?: string } = { X, obs, var: vt, source: path };
    if (note) out.note = note;
    return out;
  } finally {
    f.close();
  }
}

function columnStrings(c: Column): string[] {
  switch (c.kind) {
    case "string":
      return c.values;
    case "category":
      return Array.from(c.codes, (k) => (k >= 0 ? c.categories[k] : ""));
    default:
      return Array.from(c.values as ArrayLike<number>, String);
  }
}

/**
 * Cells × features counts from a sparse group or a dense dataset, validated as raw counts:
 * `csr` reads a csr_matrix group; `whole` turns the Csr read from CSC or dense storage into M.
 */
function readMatrix<M>(
  file: string,
  o: Dataset | Group,
  nObs: number,
  nVar: number,
  hint: string,
  csr: (g: Group, check: Check) => M,
  whole: (m: Csr) => M,
): M {
  const check = countsChecker(file, o instanceof Group ? `${o.path}/data` : o.path, hint);
  if (o instanceof Dataset) {
    const shape = o.shape ?? [];
    if (shape.length !== 2 || shape[0] !== nObs || shape[1] !== nVar) {
      throw new InputError(file, `dataset '${o.path}' has shape [${shape}], expected [${nObs}, ${nVar}] (obs × var)`);
    }
    return whole(readDenseAsCsr(file, o, nObs, nVar, check));
  }
  const enc = attrString(file, o, "encoding-type") ?? `${attrString(file, o, "h5sparse_format") ?? ""}_matrix`;
  const shape = attrNumbers(file, o, "shape") ?? attrNumbers(file, o, "h5sparse_shape");
  if (!shape || shape.length !== 2 || shape[0] !== nObs || shape[1] !== nVar) {
    throw new InputError(file, `'${o.path}' has shape [${shape ?? "missing"}], expected [${nObs}, ${nVar}] (obs × var)`);
  }
  if (enc === "csr_matrix") return csr(o, check);
  if (enc === "csc_matrix") return whole(transpose(readCompressed(file, o, nVar, nObs, check)));
  throw new InputError(file, `'${o.path}' has encoding '${enc}'; expected csr_matrix, csc_matrix or a dense array`);
}

/** Elements per slice when streaming a dataset in: ≤ 64 MiB even for 8-byte types. */
const READ_PIECE = 1 << 23;

/**
 * Calls fn(values, offset) for consecutive slices of a numeric dataset (int64 as numbers), with
 * readNumbers' (h5util) piece boundaries on whole rows and its error messages.
 */
function forEachPiece(file: string, ds: Dataset, fn: (v: ArrayLike<number>, off: number) => void): void {
  const shape = ds.shape ?? [];
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const rowLen = shape.length > 1 ? n / shape[0] : 1;
  const rowsPerPiece = Math.max(1, Math.floor(READ_PIECE / rowLen));
  for (let r0 = 0; r0 < (shape[0] ?? 1); r0 += rowsPerPiece) {
    const r1 = Math.min(shape[0] ?? 1, r0 + rowsPerPiece);
    let raw: unknown;
    try {
      raw = shape.length === 0 || (r0 === 0 && r1 === shape[0]) ? ds.value : ds.slice([[r0, r1]]);
    } catch (e) {
      throw new InputError(file, `cannot read dataset '${ds.path}' (truncated or corrupt file?): ${errText(e)}`);
    }
    if (typeof raw === "number" || typeof raw === "bigint") raw = Float64Array.of(Number(raw));
    if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) raw = int64ToNumbers(raw);
    if (!ArrayBuffer.isView(raw) || raw instanceof DataView) {
      throw new InputError(file, `dataset '${ds.path}' is not numeric (dtype ${JSON.stringify(ds.dtype)})`);
    }
    fn(raw as unknown as ArrayLike<number>, r0 * rowLen);
  }
}

/** int64 values as numbers, through the low 32-bit word where the value fits in it (no BigInt per element). */
function int64ToNumbers(raw: BigInt64Array | BigUint64Array): Float64Array {
  const out = new Float64Array(raw.length);
  const w = new Int32Array(raw.buffer, raw.byteOffset, raw.length * 2);
  const signed = raw instanceof BigInt64Array;
  for (let i = 0; i < raw.length; i++) {
    const lo = w[2 * i];
    const hi = w[2 * i + 1];
    out[i] = (hi === 0 && lo >= 0) || (signed && hi === -1 && lo < 0) ? lo : Number(raw[i]);
  }
  return out;
}

/**
 * readCompressed (h5util) into a CountMatrix: data, then indptr, then indices are read in
 * slices (the same order, checks and messages), values kept as uint16 until one does not fit,
 * when they are widened once to float32 (what readCompressed stores).
 */
function readCompressedCounts(file: string, g: Group, nMajor: number, nMinor: number, check: Check): CountMatrix {
  const name = g.path;
  const dataDs = needDataset(file, g, "data", "nonzero values");
  const indicesDs = needDataset(file, g, "indices", "index of each nonzero");
  const indptrDs = needDataset(file, g, "indptr", "pointer array");
  const length = (ds: Dataset) => (ds.shape ?? []).reduce((a, b) => a * b, 1);
  const nData = length(dataDs);
  let data: Uint16Array | Float32Array = new Uint16Array(nData);
  forEachPiece(file, dataDs, (v, off) => {
    check(v, off);
    if (data instanceof Uint16Array && !fitsUint16(v)) {
      const wide = new Float32Array(nData);
      wide.set(data.subarray(0, off));
      data = wide;
    }
    data.set(v, off);
  });
  const indptr = readNumbers(file, indptrDs, Float64Array);
  const indices = indexArray(nMinor, length(indicesDs));
  forEachPiece(file, indicesDs, (v, off) => {
    for (let i = 0; i < v.length; i++) {
      if (!(v[i] >= 0 && v[i] < nMinor)) throw new InputError(file, `dataset '${name}/indices' entry ${off + i} is ${v[i]}, out of range 0..${nMinor - 1}`);
    }
    indices.set(v, off);
  });
  checkCompressedShape(file, name, nMajor, indptr, indices.length, data.length);
  const m: CountMatrix = { kind: "counts", nRows: nMajor, nCols: nMinor, indptr, indices, data };
  sortRows(file, name, m);
  return m;
}

function readDenseAsCsr(
  file: string,
  ds: Dataset,
  nRows: number,
  nCols: number,
  check: (v: ArrayLike<number>, off: number) => void,
): Csr {
  const indptr = new Float64Array(nRows + 1);
  const idx: Uint32Array[] = [];
  const val: Float32Array[] = [];
  const rowsPerPiece = Math.max(1, Math.floor(H5_PIECE / Math.max(1, nCols)));
  for (let r0 = 0; r0 < nRows; r0 += rowsPerPiece) {
    const r1 = Math.min(nRows, r0 + rowsPerPiece);
    const piece = new Float64Array((r1 - r0) * nCols);
    const sub = readPiece(file, ds, r0, r1);
    check(sub, r0 * nCols);
    piece.set(sub);
    let nz = 0;
    for (let i = 0; i < piece.length; i++) if (piece[i] !== 0) nz++;
    const pi = new Uint32Array(nz);
    const pv = new Float32Array(nz);
    let o = 0;
    for (let r = r0; r < r1; r++) {
      const base = (r - r0) * nCols;
      for (let c = 0; c < nCols; c++) {
        const v = piece[base + c];
        if (v !== 0) {
          pi[o] = c;
          pv[o++] = v;
        }
      }
      indptr[r + 1] = indptr[r0] + o;
    }
    idx.push(pi);
    val.push(pv);
  }
  const nnz = indptr[nRows];
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  let o = 0;
  for (let p = 0; p < idx.length; p++) {
    indices.set(idx[p], o);
    data.set(val[p], o);
    o += idx[p].length;
  }
  return { nRows, nCols, indptr, indices, data };
}

function readPiece(file: string, ds: Dataset, r0: number, r1: number): ArrayLike<number> {
  let raw: unknown;
  try {
    raw = ds.slice([[r0, r1]]);
  } catch (e) {
    throw new InputError(file, `cannot read dataset '${ds.path}' (truncated or corrupt file?): ${errText(e)}`);
  }
  if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) return Float64Array.from(raw, Number);
  if (!ArrayBuffer.isView(raw)) throw new InputError(file, `dataset '${ds.path}' is not numeric`);
  return raw as unknown as ArrayLike<number>;
}

function readDataframe(file: string, f: Group, name: string): Table {
  const g = h5get(file, f, name);
  if (!(g instanceof Group)) {
    throw new InputError(file, g ? `'/${name}' is a dataset (pre-0.7 AnnData layout), expected a dataframe group` : `missing '/${name}' dataframe`);
  }
  const idxKey = attrString(file, g, "_index") ?? "_index";
  const index = readStrings(file, needDataset(file, g, idxKey, `${name} names`));
  const order = attr(file, g, "column-order");
  const names = Array.isArray(order) ? order.map(String) : typeof order === "string" && order !== "" ? [order] : [];
  const columns = new Map<string, Column>();
  for (const col of names) {
    if (col === idxKey) continue;
    const c = readColumn(file, g, col);
    const len = c.kind === "category" ? c.codes.length : c.values.length;
    if (len !== index.length) {
      throw new InputError(file, `column '/${name}/${col}' has ${len} entries, expected ${index.length} (one per row of ${name})`);
    }
    columns.set(col, c);
  }
  return { index, columns };
}

const H5T_ENUM = 8;

function readColumn(file: string, g: Group, col: string): Column {
  const o = h5get(file, g, col);
  if (!o) throw new InputError(file, `column '${g.path}/${col}' listed in column-order is missing`);
  if (o instanceof Group) {
    const enc = attrString(file, o, "encoding-type");
    if (enc === "categorical") {
      const codes = readNumbers(file, needDataset(file, o, "codes", "category codes"), Int32Array);
      const categories = readStrings(file, needDataset(file, o, "categories", "category names"));
      return { kind: "category", codes, categories };
    }
    if (enc === "nullable-integer" || enc === "nullable-boolean") {
      const values = readNumbers(file, needDataset(file, o, "values", "values"), Float64Array);
      const mask = readNumbers(file, needDataset(file, o, "mask", "missing-value mask"), Uint8Array);
      mask.forEach((m, i) => m && (values[i] = NaN));
      return { kind: "number", values };
    }
    throw new InputError(file, `column '${o.path}' has unsupported encoding '${enc}'`);
  }
  const cats = attr(file, o, "categories");
  if (cats !== undefined) {
    const categories = readStrings(file, resolveRef(file, g, o, cats));
    return { kind: "category", codes: readNumbers(file, o, Int32Array), categories };
  }
  if (isStringDataset(o)) return { kind: "string", values: readStrings(file, o) };
  if (o.metadata.type === H5T_ENUM || attrString(file, o, "cellgpu-kind") === "bool") {
    return { kind: "bool", values: readNumbers(file, o, Uint8Array) };
  }
  const { type, size, signed } = o.metadata;
  if (type === 1) return { kind: "number", values: size === 4 ? readNumbers(file, o, Float32Array) : readNumbers(file, o, Float64Array) };
  if (type === 0) return { kind: "number", values: size < 4 || (size === 4 && signed) ? readNumbers(file, o, Int32Array) : readNumbers(file, o, Float64Array) };
  throw new InputError(file, `column '${o.path}' has unsupported type ${JSON.stringify(o.dtype)}`);
}

// ---------------------------------------------------------------- writing

type Writable = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Int16Array | BigInt64Array;

function enc(o: Group | Dataset, type: string, version: string): void {
  o.create_attribute("encoding-type", type);
  o.create_attribute("encoding-version", version);
}

/** A numeric dataset, written in pieces of `piece` rows' worth of elements when large. */
export function writeArray(g: Group, name: string, data: Writable, shape: number[] = [data.length], piece = H5_PIECE): Dataset {
  const rowLen = shape.slice(1).reduce((a, b) => a * b, 1);
  if (data.length <= piece || shape[0] === 0) return g.create_dataset({ name, data, shape });
  const rows = Math.max(1, Math.floor(piece / rowLen));
  const Ctor = data.constructor as new (n: number) => Writable;
  const ds = g.create_dataset({
    name,
    data: new Ctor(0),
    shape: [0, ...shape.slice(1)],
    maxshape: [null, ...shape.slice(1)],
    chunks: [Math.min(rows, 1 << 16), ...shape.slice(1)],
  });
  ds.resize(shape);
  for (let r0 = 0; r0 < shape[0]; r0 += rows) {
    const r1 = Math.min(shape[0], r0 + rows);
    ds.write_slice([[r0, r1]], data.subarray(r0 * rowLen, r1 * rowLen));
  }
  return ds;
}

function writeStrings(g: Group, name: string, values: string[]): Dataset {
  const ds = values.length ? g.create_dataset({ name, data: values }) : g.create_dataset({ name, data: [], shape: [0], dtype: "S" });
  enc(ds, "string-array", "0.2.0");
  return ds;
}

function writeCsr(parent: Group, name: string, m: Csr): void {
  const g = parent.create_group(name);
  enc(g, "csr_matrix", "0.1.0");
  g.create_attribute("shape", new BigInt64Array([BigInt(m.nRows), BigInt(m.nCols)]), [2], "<q");
  const nnz = m.indptr[m.nRows];
  writeArray(g, "data", m.data.subarray(0, nnz));
  writeArray(g, "indices", new Int32Array(m.indices.buffer, m.indices.byteOffset, nnz));
  writeArray(g, "indptr", nnz < 2 ** 31 ? Int32Array.from(m.indptr) : toInt64(m.indptr));
}

/**
 * A sparse result matrix as csr_matrix: a Csr as above; a CountMatrix or RowBlocks through
 * streamed datasets with the same dtypes (float32 data, int32 indices, int32 indptr below 2^31
 * nonzeros else int64), so a reader sees the same matrix whichever form was passed, and no
 * full-size float32/int32 copy is ever made.
 */
function writeSparse(parent: Group, name: string, m: SparseOut): void {
  if (!("kind" in m)) return writeCsr(parent, name, m);
  const g = parent.create_group(name);
  enc(g, "csr_matrix", "0.1.0");
  g.create_attribute("shape", new BigInt64Array([BigInt(m.nRows), BigInt(m.nCols)]), [2], "<q");
  const nnz = m.kind === "counts" ? m.indptr[m.nRows] : m.nnz;
  const data = new StreamedDataset(g, "data", "f32", nnz);
  const indices = new StreamedDataset(g, "indices", "i32", nnz);
  const indptr = new StreamedDataset(g, "indptr", nnz < 2 ** 31 ? "i32" : "i64", m.nRows + 1);
  if (m.kind === "counts") {
    data.push(m.data.subarray(0, nnz));
    indices.push(m.indices.subarray(0, nnz));
    indptr.push(m.indptr.subarray(0, m.nRows + 1));
  } else {
    const where = `'${g.path}' (RowBlocks ${m.nRows} × ${m.nCols}, nnz ${nnz})`;
    let rows = 0;
    let offset = 0;
    indptr.push(Float64Array.of(0));
    for (const b of m.blocks()) {
      const bnnz = b.indptr[b.nRows];
      if (b.nCols !== m.nCols || b.indptr[0] !== 0 || rows + b.nRows > m.nRows || offset + bnnz > nnz) {
        throw new Error(`${where}: block at row ${rows} (${b.nRows} × ${b.nCols}, indptr ${b.indptr[0]}..${bnnz}) does not fit`);
      }
      data.push(b.data.subarray(0, bnnz));
      indices.push(b.indices.subarray(0, bnnz));
      indptr.push(b.indptr.subarray(1, b.nRows + 1), offset);
      rows += b.nRows;
      offset += bnnz;
    }
    if (rows !== m.nRows || offset !== nnz) throw new Error(`${where}: blocks gave ${rows} rows and ${offset} nonzeros`);
  }
  data.finish();
  indices.finish();
  indptr.finish();
}

/** Elements per HDF5 chunk of a streamed dataset (1 MiB of float32, HDF5's default chunk-cache size). */
const STREAM_CHUNK = 1 << 18;
/** Bytes per write_slice of a streamed dataset (whole chunks), so the Wasm heap stays small. */
const STREAM_SLICE_BYTES = 64 << 20;

/**
 * A 1-D dataset of known length created at full size (chunked, extended once) and filled in
 * order through a staging buffer written as whole-chunk slices of at most STREAM_SLICE_BYTES.
 */
class StreamedDataset {
  private readonly ds: Dataset | undefined;
  private readonly buf: Float32Array | Int32Array | BigInt64Array;
  private fill = 0;
  private written = 0;

  constructor(
    g: Group,
    private readonly name: string,
    kind: "f32" | "i32" | "i64",
    private readonly total: number,
  ) {
    const Ctor = kind === "f32" ? Float32Array : kind === "i32" ? Int32Array : BigInt64Array;
    if (total === 0) {
      g.create_dataset({ name, data: new Ctor(0) });
      this.buf = new Ctor(0);
      return;
    }
    const sliceLen = Math.max(1, Math.floor(STREAM_SLICE_BYTES / Ctor.BYTES_PER_ELEMENT / STREAM_CHUNK)) * STREAM_CHUNK;
    this.buf = new Ctor(Math.min(total, sliceLen));
    this.ds = g.create_dataset({ name, data: new Ctor(0), shape: [0], maxshape: [null], chunks: [Math.min(total, STREAM_CHUNK)] });
    this.ds.resize([total]);
  }

  /** Appends v[i] + add. */
  push(v: Float32Array | Float64Array | Uint16Array | Uint32Array | Int32Array, add = 0): void {
    if (this.written + this.fill + v.length > this.total) {
      throw new Error(`dataset '${this.name}': more than the ${this.total} elements declared`);
    }
    for (let a = 0; a < v.length; ) {
      const n = Math.min(v.length - a, this.buf.length - this.fill);
      const buf = this.buf;
      if (buf instanceof BigInt64Array) {
        // Low and high 32-bit words of each non-negative integer (no BigInt per element).
        const w = new Uint32Array(buf.buffer, buf.byteOffset + this.fill * 8, 2 * n);
        for (let i = 0; i < n; i++) {
          const x = v[a + i] + add;
          w[2 * i] = x % 2 ** 32;
          w[2 * i + 1] = Math.floor(x / 2 ** 32);
        }
      } else if (add === 0) {
        buf.set(v.subarray(a, a + n), this.fill);
      } else {
        for (let i = 0; i < n; i++) buf[this.fill + i] = v[a + i] + add;
      }
      this.fill += n;
      a += n;
      if (this.fill === this.buf.length) this.flush();
    }
  }

  private flush(): void {
    if (this.fill === 0 || !this.ds) return;
    this.ds.write_slice([[this.written, this.written + this.fill]], this.buf.subarray(0, this.fill));
    this.written += this.fill;
    this.fill = 0;
  }

  finish(): void {
    this.flush();
    if (this.written !== this.total) throw new Error(`dataset '${this.name}': ${this.written} elements written, ${this.total} declared`);
  }
}

function toInt64(v: Float64Array): BigInt64Array {
  const out = new BigInt64Array(v.length);
  const w = new Uint32Array(out.buffer);
  for (let i = 0; i < v.length; i++) {
    w[2 * i] = v[i] % 2 ** 32;
    w[2 * i + 1] = Math.floor(v[i] / 2 ** 32);
  }
  return out;
}

function writeDataframe(f: Group, name: string, t: Table): void {
  const g = f.create_group(name);
  enc(g, "dataframe", "0.1.0");
  g.create_attribute("_index", "_index");
  const cols = [...t.columns.keys()];
  for (const c of cols) {
    if (c === "_index" || c === "__categories" || c.includes("/")) throw new Error(`${name} column name '${c}' cannot be stored in h5ad`);
  }
  // An empty column-order is written as an empty float64 array, as h5py does (h5wasm cannot
  // write an empty string attribute without an HDF5 error message).
  if (cols.length) g.create_attribute("column-order", cols, [cols.length]);
  else g.create_attribute("column-order", new Float64Array(0), [0], "<d");
  writeStrings(g, "_index", t.index);
  let cats: Group | undefined;
  for (const [c, col] of t.columns) {
    switch (col.kind) {
      case "number":
        enc(writeArray(g, c, col.values), "array", "0.2.0");
        break;
      case "bool": {
        const ds = writeArray(g, c, col.values);
        enc(ds, "array", "0.2.0");
        ds.create_attribute("cellgpu-kind", "bool");
        break;
      }
      case "string":
        writeStrings(g, c, col.values);
        break;
      case "category": {
        const n = col.categories.length;
        const codes = n < 128 ? Int8Array.from(col.codes) : n < 32768 ? Int16Array.from(col.codes) : col.codes;
        const ds = writeArray(g, c, codes);
        enc(ds, "array", "0.2.0");
        cats ??= g.create_group("__categories");
        writeStrings(cats, c, col.categories);
        ds.create_attribute("categories", `__categories/${c}`);
        break;
      }
    }
  }
}

function writeDense(g: Group, name: string, m: DenseMatrix): void {
  const data = m.data instanceof Float32Array ? m.data : Float32Array.from(m.data);
  enc(writeArray(g, name, data, [m.nRows, m.nCols]), "array", "0.2.0");
}

function isRecarray(v: UnsValue): v is { recarray: { fields: string[]; columns: (string[] | Float32Array | Float64Array)[] } } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && "recarray" in v && Object.keys(v).length === 1;
}

const ASCII = /^[\x00-\x7f]*$/;

function writeUns(g: Group, key: string, v: UnsValue): void {
  if (key.includes("/") || key === "") throw new Error(`uns key '${key}' cannot be stored in h5ad`);
  if (typeof v === "string") {
    enc(g.create_dataset({ name: key, data: v }), "string", "0.2.0");
  } else if (typeof v === "number" || typeof v === "boolean") {
    const data =
      typeof v === "boolean"
        ? Uint8Array.of(v ? 1 : 0)
        : Number.isSafeInteger(v)
          ? BigInt64Array.of(BigInt(v))
          : Float64Array.of(v);
    enc(g.create_dataset({ name: key, data, shape: [] }), "numeric-scalar", "0.2.0");
  } else if (Array.isArray(v)) {
    writeStrings(g, key, v);
  } else if (ArrayBuffer.isView(v)) {
    enc(writeArray(g, key, v), "array", "0.2.0");
  } else if (isRecarray(v)) {
    writeRecarray(g, key, v.recarray);
  } else {
    const sub = g.create_group(key);
    enc(sub, "dict", "0.1.0");
    for (const [k, x] of Object.entries(v)) writeUns(sub, k, x);
  }
}

function writeRecarray(g: Group, key: string, r: { fields: string[]; columns: (string[] | Float32Array | Float64Array)[] }): void {
  const n = r.columns[0]?.length ?? 0;
  r.columns.forEach((c, i) => {
    if (c.length !== n) throw new Error(`uns '${key}': record field '${r.fields[i]}' has ${c.length} rows, expected ${n}`);
  });
  const asciiOnly = r.columns.every((c) => !Array.isArray(c) || c.every((s) => ASCII.test(s)));
  if (!asciiOnly || n === 0 || r.fields.length === 0) {
    const sub = g.create_group(key);
    enc(sub, "dict", "0.1.0");
    r.fields.forEach((fname, i) => writeUns(sub, fname, r.columns[i]));
    return;
  }
  const dtype = r.fields.map((fname, i): [string, string] => {
    const c = r.columns[i];
    if (Array.isArray(c)) return [fname, `A${Math.max(1, ...c.map((s) => s.length))}`];
    return [fname, c instanceof Float32Array ? "<f" : "<d"];
  });
  const data = new Map(r.fields.map((fname, i) => [fname, r.columns[i]] as [string, unknown]));
  enc(g.create_dataset({ name: key, data, dtype }), "rec-array", "0.2.0");
}

/** Write `result` as .h5ad at `path`, atomically (temp file in the same directory, then rename). */
export async function writeH5ad(path: string, result: AnalysisResult): Promise<void> {
  await h5wasm.ready;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let f: InstanceType<typeof h5wasm.File> | undefined;
  try {
    f = new h5wasm.File(tmp, "w");
    if (f.file_id < 0n) throw new Error(`cannot create ${tmp}`);
    enc(f, "anndata", "0.1.0");
    writeSparse(f, "X", result.X);
    const layers = f.create_group("layers");
    enc(layers, "dict", "0.1.0");
    for (const [k, m] of result.layers) writeSparse(layers, k, m);
    writeDataframe(f, "obs", result.obs);
    writeDataframe(f, "var", result.var);
    for (const [name, entries] of [
      ["obsm", result.obsm],
      ["varm", result.varm],
    ] as const) {
      const g = f.create_group(name);
      enc(g, "dict", "0.1.0");
      for (const [k, m] of entries) writeDense(g, k, m);
    }
    const obsp = f.create_group("obsp");
    enc(obsp, "dict", "0.1.0");
    for (const [k, m] of result.obsp) writeCsr(obsp, k, m);
    enc(f.create_group("varp"), "dict", "0.1.0");
    const uns = f.create_group("uns");
    enc(uns, "dict", "0.1.0");
    for (const [k, v] of Object.entries(result.uns)) writeUns(uns, k, v);
    f.close();
    f = undefined;
    renameSync(tmp, path);
  } catch (e) {
    try {
      f?.close();
    } finally {
      rmSync(tmp, { force: true });
    }
    throw e;
  }
}
