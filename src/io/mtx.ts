/**
 * 10x Cell Ranger MTX directory reader: matrix.mtx[.gz] (features × cells, MatrixMarket
 * coordinate), features.tsv[.gz] or genes.tsv[.gz], barcodes.tsv[.gz].
 * Produces cells × features CSR by a stable counting sort, so features stay in order in a row.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { CellMatrix } from "../core/cellMatrix.js";
import { makeUnique } from "../core/cellMatrix.js";
import type { Csr } from "../core/csr.js";
import { InputError } from "./errors.js";
import { readText, readTsvRows } from "./tsv.js";

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

/** Parse a MatrixMarket coordinate file; every entry is checked (range, count, value). */
export function parseMtx(path: string, text: string, countsExpected = true): MtxCoo {
  let pos = 0;
  let lineNo = 0;
  const nextLine = (): string | undefined => {
    if (pos >= text.length) return undefined;
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end);
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
  // Byte-level parse of "r c v" lines: no splitting, no regex; strict about what it accepts.
  let k = 0;
  const n = text.length;
  while (pos < n) {
    const lineStart = pos;
    lineNo++;
    let end = text.indexOf("\n", pos);
    if (end < 0) end = n;
    pos = end + 1;
    let i = lineStart;
    while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9 || text.charCodeAt(i) === 13)) i++;
    if (i >= end) continue; // blank line
    if (k >= nnz) throw new InputError(path, `line ${lineNo}: more entries than the ${nnz} declared on the size line`);
    const fields: string[] = [];
    let s = i;
    for (let j = i; j <= end; j++) {
      const c = j < end ? text.charCodeAt(j) : 32;
      if (c === 32 || c === 9 || c === 13) {
        if (j > s) fields.push(text.slice(s, j));
        s = j + 1;
      }
    }
    if (fields.length !== 3) {
      throw new InputError(path, `line ${lineNo}: expected 'row col value', found ${fields.length} field(s)`);
    }
    const r = Number(fields[0]);
    const c = Number(fields[1]);
    const v = Number(fields[2]);
    if (!Number.isInteger(r) || r < 1 || r > nRows) {
      throw new InputError(path, `line ${lineNo}: row index '${fields[0]}' out of range 1..${nRows}`);
    }
    if (!Number.isInteger(c) || c < 1 || c > nCols) {
      throw new InputError(path, `line ${lineNo}: column index '${fields[1]}' out of range 1..${nCols}`);
    }
    if (!Number.isFinite(v)) throw new InputError(path, `line ${lineNo}: value '${fields[2]}' is not a finite number`);
    if (countsExpected && (v < 0 || !Number.isInteger(v))) {
      throw new InputError(path, `line ${lineNo}: value '${fields[2]}' is not a non-negative integer count`);
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

  const coo = parseMtx(mtxPath, readText(mtxPath));
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
