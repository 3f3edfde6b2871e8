/**
 * 10x Cell Ranger MTX directory reader: matrix.mtx[.gz] (features × cells, MatrixMarket
 * coordinate), features.tsv[.gz] or genes.tsv[.gz], barcodes.tsv[.gz].
 * The matrix is parsed byte by byte over the gunzipped buffer (no per-line strings) and turned
 * into cells × features CSR: directly when entries are already cell-major with features
 * ascending (as Cell Ranger writes them), else by a stable counting sort. pbmc3k: ~0.3 s.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { CellMatrix } from "../core/cellMatrix.js";
import { makeUnique } from "../core/cellMatrix.js";
import type { Csr } from "../core/csr.js";
import { InputError } from "./errors.js";
import { readBytes, readTsvRows } from "./tsv.js";

function findFile(dir: string, stems: string[]): string | undefined {
  for (const s of stems) {
    for (const ext of ["", ".gz"]) {
      const p = join(dir, s + ext);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

export interface MtxCoo {
  nRows: number;
  nCols: number;
  rows: Uint32Array; // 0-based
  cols: Uint32Array; // 0-based
  values: Float32Array;
}

/**
 * Parse a MatrixMarket coordinate file; every entry is checked (range, count, value) and errors
 * name the line. `countsExpected` additionally requires non-negative integers.
 */
export function parseMtx(path: string, input: Uint8Array | string, countsExpected = true): MtxCoo {
  const buf = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const n = buf.length;
  const text = (a: number, b: number) => Buffer.from(buf.buffer, buf.byteOffset + a, b - a).toString("utf8");
  let pos = 0;
  let lineNo = 0;
  // Header and size lines are short: decode them as strings.
  const nextLine = (): string | undefined => {
    if (pos >= n) return undefined;
    let end = buf.indexOf(10, pos);
    if (end < 0) end = n;
    const line = text(pos, end);
    pos = end + 1;
    lineNo++;
    return line;
  };
  const header = nextLine();
  if (header === undefined || !header.startsWith("%%MatrixMarket")) {
    throw new InputError(path, "line 1: expected a '%%MatrixMarket matrix coordinate …' header");
  }
  const h = header.trim().toLowerCase().split(/\s+/);
  if (h[1] !== "matrix" || h[2] !== "coordinate") {
    throw new InputError(path, `line 1: expected 'matrix coordinate', found '${h.slice(1, 3).join(" ")}'`);
  }
  const field = h[3];
  if (!["integer", "real", "double"].includes(field)) {
    throw new InputError(path, `line 1: field type '${field}' is not supported (expected integer or real)`);
  }
  if (h[4] && h[4] !== "general") {
    throw new InputError(path, `line 1: symmetry '${h[4]}' is not supported (expected general)`);
  }
  let sizeLine: string | undefined;
  while ((sizeLine = nextLine()) !== undefined) {
    if (!sizeLine.startsWith("%") && sizeLine.trim() !== "") break;
  }
  if (sizeLine === undefined) throw new InputError(path, "no size line after the header (file truncated?)");
  const dims = sizeLine.trim().split(/\s+/).map(Number);
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new InputError(path, `line ${lineNo}: expected 'rows cols entries' as three non-negative integers, found '${sizeLine.trim()}'`);
  }
  const [nRows, nCols, nnz] = dims;
  const rows = new Uint32Array(nnz);
  const cols = new Uint32Array(nnz);
  const values = new Float32Array(nnz);
  // Entries: a byte-level scan of "r c v" lines. Plain decimal digits (every 10x file) are
  // converted in place; anything else ("1e3", "2.5", "-1", "nan") is decoded and handed to
  // Number(), so the accepted syntax and the error messages stay those of a string parser.
  let k = 0;
  while (pos < n) {
    lineNo++;
    // Fast path for the canonical line "<digits> <digits> <digits>\n" with an in-range entry;
    // any other line (or a failed check) goes through the general parse below.
    if (k < nnz) {
      let j = pos;
      let ch = buf[j];
      let r = 0, c = 0, v = 0;
      if (ch >= 48 && ch <= 57) {
        do (r = r * 10 + ch - 48), (ch = buf[++j]); while (ch >= 48 && ch <= 57);
        if (ch === 32 && (ch = buf[++j]) >= 48 && ch <= 57) {
          do (c = c * 10 + ch - 48), (ch = buf[++j]); while (ch >= 48 && ch <= 57);
          if (ch === 32 && (ch = buf[++j]) >= 48 && ch <= 57) {
            do (v = v * 10 + ch - 48), (ch = buf[++j]); while (ch >= 48 && ch <= 57);
            if (ch === 13) ch = buf[++j];
            if ((ch === 10 || j === n) && r >= 1 && r <= nRows && c >= 1 && c <= nCols) {
              rows[k] = r - 1;
              cols[k] = c - 1;
              values[k] = v;
              k++;
              pos = j + 1;
              continue;
            }
          }
        }
      }
    }
    // Field start/end and, when the field is plain decimal digits, its value (else -1).
    let s0 = 0, e0 = 0, x0 = 0, s1 = 0, e1 = 0, x1 = 0, s2 = 0, e2 = 0, x2 = 0;
    let nf = 0;
    let i = pos;
    for (;;) {
      let c = 0;
      while (i < n && ((c = buf[i]) === 32 || c === 9 || c === 13)) i++;
      if (i >= n || c === 10) break;
      const s = i;
      let x = 0;
      let plain = true;
      while (i < n) {
        c = buf[i];
        const d = c - 48;
        if (d >= 0 && d <= 9) x = x * 10 + d;
        else if (c === 32 || c === 9 || c === 13 || c === 10) break;
        else plain = false;
        i++;
      }
      if (!plain || i - s > 15) x = -1;
      if (nf === 0) (s0 = s), (e0 = i), (x0 = x);
      else if (nf === 1) (s1 = s), (e1 = i), (x1 = x);
      else if (nf === 2) (s2 = s), (e2 = i), (x2 = x);
      nf++;
    }
    pos = i + 1;
    if (nf === 0) continue; // blank line
    if (k >= nnz) throw new InputError(path, `line ${lineNo}: more entries than the ${nnz} declared on the size line`);
    if (nf !== 3) throw new InputError(path, `line ${lineNo}: expected 'row col value', found ${nf} field(s)`);
    const r = x0 >= 0 ? x0 : Number(text(s0, e0));
    const c = x1 >= 0 ? x1 : Number(text(s1, e1));
    const v = x2 >= 0 ? x2 : Number(text(s2, e2));
    if (!Number.isInteger(r) || r < 1 || r > nRows) {
      throw new InputError(path, `line ${lineNo}: row index '${text(s0, e0)}' out of range 1..${nRows}`);
    }
    if (!Number.isInteger(c) || c < 1 || c > nCols) {
      throw new InputError(path, `line ${lineNo}: column index '${text(s1, e1)}' out of range 1..${nCols}`);
    }
    if (!Number.isFinite(v)) throw new InputError(path, `line ${lineNo}: value '${text(s2, e2)}' is not a finite number`);
    if (countsExpected && (v < 0 || !Number.isInteger(v))) {
      throw new InputError(path, `line ${lineNo}: value '${text(s2, e2)}' is not a non-negative integer count`);
    }
    rows[k] = r - 1;
    cols[k] = c - 1;
    values[k] = v;
    k++;
  }
  if (k !== nnz) throw new InputError(path, `found ${k} entries but the size line declares ${nnz} (file truncated?)`);
  return { nRows, nCols, rows, cols, values };
}

/** COO (features × cells) to CSR (cells × features); duplicate coordinates are an error. */
export function cooToCellCsr(path: string, coo: MtxCoo): Csr {
  const nCells = coo.nCols;
  const nnz = coo.values.length;
  const indptr = new Float64Array(nCells + 1);
  for (let k = 0; k < nnz; k++) indptr[coo.cols[k] + 1]++;
  for (let c = 0; c < nCells; c++) indptr[c + 1] += indptr[c];
  // Cell Ranger writes entries cell by cell with features ascending: then the CSR is the COO
  // as is, and strictly increasing features within a cell also rules out duplicates.
  let sorted = true;
  for (let k = 1; k < nnz; k++) {
    const dc = coo.cols[k] - coo.cols[k - 1];
    if (dc < 0 || (dc === 0 && coo.rows[k] <= coo.rows[k - 1])) {
      sorted = false;
      break;
    }
  }
  if (sorted) return { nRows: nCells, nCols: coo.nRows, indptr, indices: coo.rows, data: coo.values };
  const next = Float64Array.from(indptr.subarray(0, nCells));
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  // Counting sort by cell, then by feature within each cell.
  const byRow = new Uint32Array(nnz);
  {
    const rowStart = new Float64Array(coo.nRows + 1);
    for (let k = 0; k < nnz; k++) rowStart[coo.rows[k] + 1]++;
    for (let r = 0; r < coo.nRows; r++) rowStart[r + 1] += rowStart[r];
    for (let k = 0; k < nnz; k++) byRow[rowStart[coo.rows[k]]++] = k;
  }
  for (let t = 0; t < nnz; t++) {
    const k = byRow[t];
    const o = next[coo.cols[k]]++;
    indices[o] = coo.rows[k];
    data[o] = coo.values[k];
  }
  for (let c = 0; c < nCells; c++) {
    for (let o = indptr[c] + 1; o < indptr[c + 1]; o++) {
      if (indices[o] === indices[o - 1]) {
        throw new InputError(path, `duplicate entry for feature ${indices[o] + 1}, cell ${c + 1}`);
      }
    }
  }
  return { nRows: nCells, nCols: coo.nRows, indptr, indices, data };
}

export function readTenxMtxDir(dir: string): CellMatrix {
  const mtxPath = findFile(dir, ["matrix.mtx"]);
  if (!mtxPath) throw new InputError(dir, "no matrix.mtx or matrix.mtx.gz in this directory");
  const featPath = findFile(dir, ["features.tsv", "genes.tsv"]);
  if (!featPath) throw new InputError(dir, "no features.tsv[.gz] or genes.tsv[.gz] in this directory");
  const bcPath = findFile(dir, ["barcodes.tsv"]);
  if (!bcPath) throw new InputError(dir, "no barcodes.tsv[.gz] in this directory");

  const coo = parseMtx(mtxPath, readBytes(mtxPath));
  const feats = readTsvRows(featPath);
  const barcodes = readTsvRows(bcPath).map((r) => r[0]);
  if (feats.length !== coo.nRows) {
    throw new InputError(featPath, `has ${feats.length} rows but ${mtxPath} declares ${coo.nRows} features`);
  }
  if (barcodes.length !== coo.nCols) {
    throw new InputError(bcPath, `has ${barcodes.length} rows but ${mtxPath} declares ${coo.nCols} cells`);
  }
  feats.forEach((f, i) => {
    if (f.length < 2 && f[0] === "") throw new InputError(featPath, `line ${i + 1}: empty feature`);
  });
  const seen = new Map<string, number>();
  barcodes.forEach((b, i) => {
    if (b === "") throw new InputError(bcPath, `line ${i + 1}: empty barcode`);
    const prev = seen.get(b);
    if (prev !== undefined) throw new InputError(bcPath, `line ${i + 1}: duplicate barcode '${b}' (first on line ${prev + 1})`);
    seen.set(b, i);
  });
  const ids = feats.map((f) => f[0]);
  const names = feats.map((f) => f[1] ?? f[0]);
  const types = feats.map((f) => f[2] ?? "Gene Expression");
  const X = cooToCellCsr(mtxPath, coo);
  return {
    X,
    obs: { index: barcodes, columns: new Map() },
    var: {
      index: makeUnique(names),
      columns: new Map([
        ["gene_ids", { kind: "string", values: ids }],
        ["feature_types", { kind: "string", values: types }],
      ]),
    },
    source: dir,
  };
}
