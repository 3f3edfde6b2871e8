/**
 * Small layer over h5wasm shared by the 10x .h5 and .h5ad readers/writers: opening files with
 * clean errors, reading numeric datasets in pieces (the Wasm heap is capped at 2 GiB, so no
 * single read or write may come near that), int64 → number conversion, counts validation and
 * CSR/CSC assembly with every structural check. Every failure is an InputError naming the file
 * and the dataset.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import h5wasm, { Dataset, Group, Reference } from "h5wasm/node";
import type { File } from "h5wasm/node";
import type { Csr } from "../core/csr.js";
import { InputError } from "./errors.js";

/** Elements per read/write piece: 64 Mi elements ≤ 512 MiB even for 8-byte types. */
export const H5_PIECE = 1 << 26;

export async function h5ready(): Promise<void> {
  await h5wasm.ready;
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** True if `path` starts with the HDF5 signature (at 0, or after a 512·2^k-byte user block). */
function hasHdf5Signature(path: string): boolean {
  const size = statSync(path).size;
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(8);
    for (let off = 0; off + 8 <= size; off = off === 0 ? 512 : off * 2) {
      if (readSync(fd, b, 0, 8, off) === 8 && b.equals(SIGNATURE)) return true;
      if (off > 1 << 20) break;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs fn with HDF5's own error stack (the "HDF5-DIAG" block the library prints to stderr) sent
 * to a temp file instead of the terminal, so a bad file gives one clear line. If fn throws an
 * InputError, the library's innermost message (e.g. "truncated file: eof = …") is appended.
 */
export async function withHdf5Diagnostics<T>(fn: () => Promise<T>): Promise<T> {
  const M = (await h5wasm.ready) as unknown as { FS?: { getStream?: (fd: number) => { nfd?: number } | undefined } };
  const stream = M.FS?.getStream?.(2);
  if (!stream || typeof stream.nfd !== "number") return fn();
  const dir = mkdtempSync(join(tmpdir(), "cellgpu-h5-"));
  const logPath = join(dir, "diag.txt");
  const fd = openSync(logPath, "w+");
  const saved = stream.nfd;
  stream.nfd = fd;
  try {
    return await fn();
  } catch (e) {
    if (e instanceof InputError) {
      const inner = readFileSync(logPath, "utf8")
        .split("\n")
        .filter((l) => /^\s*#\d+:/.test(l))
        .pop()
        ?.replace(/^.*\(\):\s*/, "");
      if (inner && !e.problem.includes(inner)) throw new InputError(e.file, `${e.problem} (HDF5: ${inner})`);
    }
    throw e;
  } finally {
    stream.nfd = saved;
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Open an HDF5 file for reading; InputError if it is missing, not HDF5 or unreadable. */
export async function openH5(path: string): Promise<File> {
  await h5wasm.ready;
  try {
    if (!statSync(path).isFile()) throw new InputError(path, "is not a file");
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (!hasHdf5Signature(path)) throw new InputError(path, "not an HDF5 file (no HDF5 signature; corrupt or wrong format?)");
  let f: File;
  try {
    f = new h5wasm.File(path, "r");
  } catch (e) {
    throw new InputError(path, `cannot open as HDF5 (truncated or corrupt file?): ${errText(e)}`);
  }
  if (f.file_id < 0n) throw new InputError(path, "cannot open as HDF5 (truncated or corrupt file?)");
  return f;
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The object at `name` (absolute or relative to `g`), or undefined; a corrupt link is an InputError. */
export function h5get(file: string, g: Group, name: string): Dataset | Group | undefined {
  let o: unknown;
  try {
    o = g.get(name);
  } catch (e) {
    throw new InputError(file, `cannot read '${name}' (truncated or corrupt file?): ${errText(e)}`);
  }
  if (o instanceof Dataset || o instanceof Group) return o;
  return undefined;
}

export function needDataset(file: string, g: Group, name: string, what: string): Dataset {
  const o = h5get(file, g, name);
  if (!(o instanceof Dataset)) throw new InputError(file, `missing dataset '${fullName(g, name)}' (${what})`);
  return o;
}

export function fullName(g: Group, name: string): string {
  if (name.startsWith("/")) return name;
  return g.path === "/" ? `/${name}` : `${g.path}/${name}`;
}

/** An attribute's value, or undefined when absent. */
export function attr(file: string, o: Dataset | Group, name: string): unknown {
  try {
    const names = Object.keys(o.attrs);
    if (!names.includes(name)) return undefined;
    return o.get_attribute(name, false);
  } catch (e) {
    throw new InputError(file, `cannot read attribute '${name}' of '${o.path}': ${errText(e)}`);
  }
}

export function attrString(file: string, o: Dataset | Group, name: string): string | undefined {
  const v = attr(file, o, name);
  if (v === undefined) return undefined;
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.length === 1 && typeof v[0] === "string") return v[0];
  return String(v);
}

/** Attribute as a list of numbers (int64 attributes come back as BigInt). */
export function attrNumbers(file: string, o: Dataset | Group, name: string): number[] | undefined {
  const v = attr(file, o, name);
  if (v === undefined) return undefined;
  const arr = ArrayBuffer.isView(v) || Array.isArray(v) ? Array.from(v as ArrayLike<number | bigint>) : [v];
  return arr.map((x) => Number(x as number | bigint));
}

type NumOut = Float32Array | Float64Array | Int32Array | Uint32Array | Uint8Array;

function nElements(ds: Dataset): number {
  return (ds.shape ?? []).reduce((a, b) => a * b, 1);
}

/** Copy a raw piece into out[off..], turning int64 values into numbers. */
function copyPiece(raw: unknown, out: NumOut, off: number): boolean {
  if (raw instanceof BigInt64Array || raw instanceof BigUint64Array) {
    // Read the low 32-bit word where the value fits in it (the common case), else convert.
    const w = new Int32Array(raw.buffer, raw.byteOffset, raw.length * 2);
    const signed = raw instanceof BigInt64Array;
    for (let i = 0; i < raw.length; i++) {
      const lo = w[2 * i];
      const hi = w[2 * i + 1];
      out[off + i] = (hi === 0 && lo >= 0) || (signed && hi === -1 && lo < 0) ? lo : Number(raw[i]);
    }
    return true;
  }
  if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
    out.set(raw as unknown as ArrayLike<number>, off);
    return true;
  }
  return false;
}

/**
 * A numeric dataset as `Out`, read in pieces of about `piece` elements (whole rows). `check(piece, offset)` sees the
 * values as stored (before any narrowing to `Out`), so validation is exact.
 */
export function readNumbers<T extends NumOut>(
  file: string,
  ds: Dataset,
  Out: new (n: number) => T,
  check?: (piece: ArrayLike<number>, offset: number) => void,
  piece = H5_PIECE,
): T {
  const shape = ds.shape ?? [];
  const n = nElements(ds);
  const out = new Out(n);
  if (n === 0) return out;
  const rowLen = shape.length > 1 ? n / shape[0] : 1;
  const rowsPerPiece = Math.max(1, Math.floor(piece / rowLen));
  for (let r0 = 0; r0 < (shape[0] ?? 1); r0 += rowsPerPiece) {
    const r1 = Math.min(shape[0] ?? 1, r0 + rowsPerPiece);
    let raw: unknown;
    try {
      raw = shape.length === 0 || (r0 === 0 && r1 === shape[0]) ? ds.value : ds.slice([[r0, r1]]);
    } catch (e) {
      throw new InputError(file, `cannot read dataset '${ds.path}' (truncated or corrupt file?): ${errText(e)}`);
    }
    const off = r0 * rowLen;
    if (typeof raw === "number" || typeof raw === "bigint") raw = Float64Array.of(Number(raw));
    if (check && ArrayBuffer.isView(raw)) {
      check(raw instanceof BigInt64Array || raw instanceof BigUint64Array ? copyToF64(raw) : (raw as unknown as ArrayLike<number>), off);
    }
    if (!copyPiece(raw, out, off)) throw new InputError(file, `dataset '${ds.path}' is not numeric (dtype ${JSON.stringify(ds.dtype)})`);
  }
  return out;
}

function copyToF64(raw: BigInt64Array | BigUint64Array): Float64Array {
  const f = new Float64Array(raw.length);
  copyPiece(raw, f, 0);
  return f;
}

/** A string dataset (vlen or fixed); numbers are turned into their decimal text. */
export function readStrings(file: string, ds: Dataset): string[] {
  let raw: unknown;
  try {
    raw = ds.value;
  } catch (e) {
    throw new InputError(file, `cannot read dataset '${ds.path}' (truncated or corrupt file?): ${errText(e)}`);
  }
  if (typeof raw === "string") return [raw];
  if (Array.isArray(raw)) return raw.map((x) => (typeof x === "string" ? x : String(x)));
  if (ArrayBuffer.isView(raw)) return Array.from(raw as unknown as ArrayLike<number | bigint>, (x) => String(x));
  throw new InputError(file, `dataset '${ds.path}' is not a string array`);
}

export function isStringDataset(ds: Dataset): boolean {
  return typeof ds.dtype === "string" && /^[SA]\d*$/.test(ds.dtype);
}

/** Throws unless every value is a finite non-negative integer (raw UMI counts). */
export function countsChecker(file: string, dsName: string, hint = "") {
  return (v: ArrayLike<number>, offset: number) => {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (!(x >= 0) || !Number.isInteger(x)) {
        const what = Number.isNaN(x) ? "NaN" : x < 0 ? "negative" : !Number.isFinite(x) ? "infinite" : "not an integer";
        throw new InputError(file, `dataset '${dsName}' entry ${offset + i} is ${x} (${what}); expected raw counts (non-negative integers)${hint}`);
      }
    }
  };
}

/**
 * Compressed sparse matrix from data/indices/indptr datasets: `nMajor` rows of the compressed
 * axis, `nMinor` columns. Checks lengths, pointer monotonicity and index range; sorts
 * unsorted rows (scipy allows them) and rejects duplicate indices within a row.
 */
export function readCompressed(
  file: string,
  g: Group,
  nMajor: number,
  nMinor: number,
  check?: (piece: ArrayLike<number>, offset: number) => void,
): Csr {
  const name = g.path;
  const dataDs = needDataset(file, g, "data", "nonzero values");
  const indicesDs = needDataset(file, g, "indices", "index of each nonzero");
  const indptrDs = needDataset(file, g, "indptr", "pointer array");
  const data = readNumbers(file, dataDs, Float32Array, check);
  const indptr = readNumbers(file, indptrDs, Float64Array);
  let bad = -1;
  const indices = readNumbers(file, indicesDs, Uint32Array, (v, off) => {
    for (let i = 0; i < v.length && bad < 0; i++) if (!(v[i] >= 0 && v[i] < nMinor)) bad = off + i;
    if (bad >= 0) throw new InputError(file, `dataset '${name}/indices' entry ${bad} is ${v[bad - off]}, out of range 0..${nMinor - 1}`);
  });
  checkCompressedShape(file, name, nMajor, indptr, indices.length, data.length);
  const m: Csr = { nRows: nMajor, nCols: nMinor, indptr, indices, data };
  sortRows(file, name, m);
  return m;
}

/** indptr/indices/data of a compressed sparse group agree with each other and the shape. */
export function checkCompressedShape(file: string, name: string, nMajor: number, indptr: Float64Array, nIndices: number, nData: number): void {
  if (indptr.length !== nMajor + 1) {
    throw new InputError(file, `dataset '${name}/indptr' has ${indptr.length} entries, expected ${nMajor + 1} (shape says ${nMajor} along the compressed axis)`);
  }
  if (nIndices !== nData) {
    throw new InputError(file, `'${name}/indices' has ${nIndices} entries but '${name}/data' has ${nData}`);
  }
  if (indptr[0] !== 0 || indptr[nMajor] !== nData) {
    throw new InputError(file, `dataset '${name}/indptr' must run from 0 to ${nData} (nnz), found ${indptr[0]}..${indptr[nMajor]}`);
  }
  for (let r = 0; r < nMajor; r++) {
    if (indptr[r + 1] < indptr[r]) throw new InputError(file, `dataset '${name}/indptr' decreases at entry ${r + 1}`);
  }
}

/** Make column indices strictly increasing within each row, in place (a Csr or compact counts). */
export function sortRows(
  file: string,
  name: string,
  m: { nRows: number; indptr: Float64Array; indices: Uint16Array | Uint32Array; data: Uint16Array | Float32Array },
): void {
  for (let r = 0; r < m.nRows; r++) {
    const a = m.indptr[r];
    const b = m.indptr[r + 1];
    let sorted = true;
    for (let k = a + 1; k < b; k++) {
      if (m.indices[k] <= m.indices[k - 1]) {
        sorted = false;
        break;
      }
    }
    if (sorted) continue;
    const order = Array.from({ length: b - a }, (_, i) => a + i).sort((x, y) => m.indices[x] - m.indices[y]);
    const idx = Uint32Array.from(order, (k) => m.indices[k]);
    const val = Float64Array.from(order, (k) => m.data[k]); // exact for float32 and uint16 values
    for (let k = 1; k < idx.length; k++) {
      if (idx[k] === idx[k - 1]) throw new InputError(file, `'${name}': duplicate index ${idx[k]} in row ${r} of the compressed axis`);
    }
    m.indices.set(idx, a);
    m.data.set(val, a);
  }
}

/** Resolve a `categories` attribute (a path relative to the parent group, or an object reference). */
export function resolveRef(file: string, parent: Group, ds: Dataset, ref: unknown): Dataset {
  let o: unknown;
  try {
    o = ref instanceof Reference ? ds.dereference(ref) : parent.get(String(ref));
  } catch (e) {
    throw new InputError(file, `cannot resolve categories of '${ds.path}': ${errText(e)}`);
  }
  if (!(o instanceof Dataset)) throw new InputError(file, `categories of '${ds.path}' (${String(ref)}) are not a dataset`);
  return o;
}
