/**
 * Compact count readers: readTenxMtxDirCounts must give exactly the matrix of the COO/CSR MTX
 * reader (readTenxMtxDir / readTenxMtxDirAsync, already checked against an independent string
 * parse in io.test.ts) with compact arrays, for every chunk size, every entry order, the
 * uint16→float32 widening and > 65536 features, and the same error messages on bad inputs;
 * readInputCounts must give readInput's result (dispatch, errors, feature-type split).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CellMatrix, CountCellMatrix, Table } from "../src/core/cellMatrix.js";
import { countsToCsr } from "../src/core/counts.js";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { InputError } from "../src/io/errors.js";
import { readTenxMtxDir, readTenxMtxDirAsync, readTenxMtxDirCounts } from "../src/io/mtx.js";
import { readInput, readInputCounts } from "../src/io/read.js";
import { python } from "./helpers/python.js";

const REPO = join(import.meta.dirname, "..");
const PBMC3K = join(REPO, "datasets/pbmc3k");
const SHARED = "/work/shared/datasets";
let tmp: string;
let nDirs = 0;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "cellgpu-iocounts-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function sameCsr(a: Csr, b: Csr, what = ""): void {
  expect([a.nRows, a.nCols], what).toEqual([b.nRows, b.nCols]);
  const na = a.indptr[a.nRows];
  const nb = b.indptr[b.nRows];
  expect(firstDiff(a.indptr, b.indptr), what).toBe(-1);
  expect(firstDiff(a.indices.subarray(0, na), b.indices.subarray(0, nb)), what).toBe(-1);
  expect(firstDiff(a.data.subarray(0, na), b.data.subarray(0, nb)), what).toBe(-1);
}

/** Same index and columns (strings joined: toEqual is slow on tens of thousands of names). */
function sameTable(a: Table, b: Table, what: string): void {
  expect(a.index.length, what).toBe(b.index.length);
  expect(a.index.join("\n") === b.index.join("\n"), what).toBe(true);
  expect([...a.columns.keys()], what).toEqual([...b.columns.keys()]);
  for (const [k, col] of b.columns) {
    const mine = a.columns.get(k)!;
    expect(mine.kind, what).toBe(col.kind);
    expect(JSON.stringify(Object.values(mine)) === JSON.stringify(Object.values(col)), `${what} ${k}`).toBe(true);
  }
}

/** The compact read equals the CSR read: matrix (widened back), obs, var, source, split. */
function sameMatrix(c: CountCellMatrix, m: CellMatrix, what = ""): void {
  expect(c.X.kind).toBe("counts");
  expect(c.X.indptr.length).toBe(c.X.nRows + 1);
  expect(c.X.indices.length, what).toBe(c.X.indptr[c.X.nRows]);
  expect(c.X.data.length, what).toBe(c.X.indptr[c.X.nRows]);
  sameCsr(countsToCsr(c.X), m.X, what);
  sameTable(c.obs, m.obs, `${what} obs`);
  sameTable(c.var, m.var, `${what} var`);
  expect(c.source).toBe(m.source);
  expect(c.note).toBe(m.note);
  expect([...(c.altExperiments?.keys() ?? [])]).toEqual([...(m.altExperiments?.keys() ?? [])]);
  for (const [t, e] of m.altExperiments ?? []) {
    const ce = c.altExperiments!.get(t)!;
    sameCsr(countsToCsr(ce.X), e.X, `${what} ${t}`);
    sameTable(ce.var, e.var, `${what} ${t} var`);
  }
}

/** The InputError message `f` throws (or "ok" when it returns). */
async function outcome(f: () => unknown): Promise<string> {
  try {
    await f();
    return "ok";
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).message;
  }
}

/** A 10x directory holding `mtx` (gzipped when `gz`) and generated features and barcodes. */
function tenxDir(mtx: string | Buffer, nFeatures: number, nCells: number, gz: boolean): string {
  const dir = join(tmp, `d${nDirs++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, gz ? "matrix.mtx.gz" : "matrix.mtx"), gz ? gzipSync(mtx) : mtx);
  const feats = Array.from({ length: nFeatures }, (_, i) => `ENSG${i}\tG${i % 1000 === 999 ? 7 : i}\t${i % 11 === 10 ? "Antibody Capture" : "Gene Expression"}\n`);
  writeFileSync(join(dir, "features.tsv"), feats.join(""));
  writeFileSync(join(dir, "barcodes.tsv.gz"), gzipSync(Array.from({ length: nCells }, (_, i) => `BC${i}-1\n`).join("")));
  return dir;
}

type Entry = [feature: number, cell: number, value: number];

/** MatrixMarket text of `entries` (1-based in the file) with occasional odd but valid syntax. */
function mtxText(rng: Rng, nF: number, nC: number, entries: Entry[], odd: boolean): string {
  const out = ["%%MatrixMarket matrix coordinate integer general", "%metadata_json: {}", `${nF} ${nC} ${entries.length}`];
  for (const [f, c, v] of entries) {
    if (odd && rng.nextFloat() < 0.05) out.push(`${f + 1}\t${c + 1}  ${v}\r`);
    else if (odd && rng.nextFloat() < 0.03) out.push(`${f + 1} ${c + 1} 00${v}`, "");
    else if (odd && rng.nextFloat() < 0.02 && v % 10 === 0 && v > 0) out.push(`${f + 1} ${c + 1} ${v / 10}e1`);
    else out.push(`${f + 1} ${c + 1} ${v}`);
  }
  return out.join("\n") + (rng.nextFloat() < 0.5 ? "\n" : "");
}

/** Random sparse counts, cell-major with features ascending (Cell Ranger's order). */
function randomEntries(rng: Rng, nF: number, nC: number, density: number, bigEvery = 0): Entry[] {
  const entries: Entry[] = [];
  for (let c = 0; c < nC; c++) {
    if (rng.nextFloat() < 0.1) continue; // empty cells, also at the ends
    for (let f = 0; f < nF; f++) {
      if (rng.nextFloat() >= density) continue;
      const u = rng.nextFloat();
      entries.push([f, c, u < 0.6 ? 1 : u < 0.9 ? 2 + Math.floor(rng.nextFloat() * 20) : Math.floor(rng.nextFloat() * 3000)]);
    }
  }
  if (bigEvery) for (let k = bigEvery; k < entries.length; k += bigEvery) entries[k][2] = 65536 + Math.floor(rng.nextFloat() * 1e6);
  return entries;
}

function shuffle<T>(rng: Rng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Within each cell, features in random order (still cell-major). */
function shuffleWithinCells(rng: Rng, entries: Entry[]): Entry[] {
  const out: Entry[] = [];
  for (let a = 0; a < entries.length; ) {
    let b = a;
    while (b < entries.length && entries[b][1] === entries[a][1]) b++;
    out.push(...shuffle(rng, entries.slice(a, b)));
    a = b;
  }
  return out;
}

const CHUNKS = [1, 7, 64, 4096, undefined];

/** readTenxMtxDirCounts at every chunk size equals readTenxMtxDir; returns the default-chunk read. */
async function checkDir(dir: string, what: string, chunks = CHUNKS): Promise<CountCellMatrix> {
  const ref = readTenxMtxDir(dir);
  let last: CountCellMatrix | undefined;
  for (const chunkBytes of chunks) {
    last = await readTenxMtxDirCounts(dir, { chunkBytes });
    sameMatrix(last, ref, `${what} / chunk ${chunkBytes}`);
  }
  return last!;
}

describe("readTenxMtxDirCounts", () => {
  it("pbmc3k equals readTenxMtxDirAsync (streamed) with uint16 indices and values", async () => {
    const t0 = performance.now();
    const ref = await readTenxMtxDirAsync(PBMC3K, { stream: true });
    const t1 = performance.now();
    const c = await readTenxMtxDirCounts(PBMC3K);
    const t2 = performance.now();
    console.log(`pbmc3k: readTenxMtxDirAsync(stream) ${(t1 - t0).toFixed(0)} ms, readTenxMtxDirCounts ${(t2 - t1).toFixed(0)} ms`);
    sameMatrix(c, ref, "pbmc3k");
    expect(c.X.indices).toBeInstanceOf(Uint16Array);
    expect(c.X.data).toBeInstanceOf(Uint16Array);
    expect(c.X.indptr[2700]).toBe(2286884);
    sameMatrix(await readTenxMtxDirCounts(PBMC3K, { chunkBytes: 65536 }), ref, "pbmc3k 64 KiB chunks");
  });

  it("pbmc3k's first 3000 lines (cell-major, shuffled within cells, shuffled) at tiny chunks", async () => {
    const lines = gunzipSync(readFileSync(join(PBMC3K, "matrix.mtx.gz"))).toString("utf8").split("\n");
    const entries: Entry[] = lines.slice(3, 3003).map((l) => {
      const [f, c, v] = l.split(" ").map(Number);
      return [f - 1, c - 1, v];
    });
    const rng = new Rng(3);
    for (const [name, order, gz] of [
      ["cell-major", entries, true],
      ["within cells", shuffleWithinCells(rng, entries), false],
      ["shuffled", shuffle(rng, entries.slice()), true],
    ] as const) {
      const dir = tenxDir(mtxText(rng, 32738, 2700, order, false), 32738, 2700, gz);
      const c = await checkDir(dir, `${name} gz=${gz}`, [1, 7, undefined]);
      expect(c.X.data).toBeInstanceOf(Uint16Array);
    }
  });

  it("random matrices in every entry order, with odd syntax, equal readTenxMtxDir", async () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 6; trial++) {
      const nF = 1 + Math.floor(rng.nextFloat() * 60);
      const nC = 1 + Math.floor(rng.nextFloat() * 40);
      const base = randomEntries(rng, nF, nC, rng.nextFloat() * 0.4);
      for (const order of [base, shuffleWithinCells(rng, base), shuffle(rng, base.slice())]) {
        const dir = tenxDir(mtxText(rng, nF, nC, order, true), nF, nC, trial % 2 === 0);
        const c = await checkDir(dir, `trial ${trial}`);
        expect(c.X.indices).toBeInstanceOf(Uint16Array);
        expect(c.X.data).toBeInstanceOf(Uint16Array);
        // The feature-type split of readInputCounts equals readInput's (features cycle through two types).
        sameMatrix(await readInputCounts(dir), await readInput(dir), `readInputCounts trial ${trial}`);
      }
    }
  });

  it("a count over 65535 midway widens the values to float32, exactly, in every order", async () => {
    const rng = new Rng(5);
    const base = randomEntries(rng, 50, 60, 0.2);
    const mid = base.length >> 1;
    base[mid][2] = 70000;
    base[mid + 3][2] = 16777217; // not a float32: both readers round it the same way
    for (const order of [base, shuffleWithinCells(rng, base), shuffle(rng, base.slice())]) {
      const dir = tenxDir(mtxText(rng, 50, 60, order, false), 50, 60, false);
      const c = await checkDir(dir, "widen");
      expect(c.X.data).toBeInstanceOf(Float32Array);
      expect(Array.from(c.X.data)).toContain(70000);
    }
    // Widened from the first entry and from the last.
    for (const at of [0, base.length - 1]) {
      const e = base.map((x) => [...x] as Entry);
      e[at][2] = 65536;
      const c = await checkDir(tenxDir(mtxText(rng, 50, 60, e, false), 50, 60, true), `widen at ${at}`, [7, undefined]);
      expect(c.X.data).toBeInstanceOf(Float32Array);
    }
    // 65535 still fits.
    const e = base.map((x) => [...x] as Entry);
    e[mid][2] = 65535;
    e[mid + 3][2] = 3;
    expect((await checkDir(tenxDir(mtxText(rng, 50, 60, e, false), 50, 60, false), "65535", [undefined])).X.data).toBeInstanceOf(Uint16Array);
  });

  it("more than 65536 features gives uint32 indices; exactly 65536 stays uint16", async () => {
    const rng = new Rng(8);
    for (const nF of [70001, 65536]) {
      const entries: Entry[] = [];
      for (let c = 0; c < 30; c++) {
        for (let j = 0; j < 40; j++) entries.push([Math.floor(rng.nextFloat() * nF), c, 1 + Math.floor(rng.nextFloat() * 9)]);
        entries.push([nF - 1, c, 2]);
      }
      // Unique (feature, cell), features within a cell in random order.
      const seen = new Set<string>();
      const uniq = entries.filter(([f, c]) => !seen.has(`${f},${c}`) && !!seen.add(`${f},${c}`));
      for (const order of nF > 65536 ? [uniq, shuffle(rng, uniq.slice())] : [uniq]) {
        const c = await checkDir(tenxDir(mtxText(rng, nF, 30, order, false), nF, 30, true), `nF ${nF}`, [7]);
        expect(c.X.indices).toBeInstanceOf(nF > 65536 ? Uint32Array : Uint16Array);
        expect(Math.max(...c.X.indices)).toBe(nF - 1);
      }
    }
  });

  it("duplicate entries give readTenxMtxDir's error, found in the same cell, in every order", async () => {
    const rng = new Rng(21);
    const base = randomEntries(rng, 30, 20, 0.3).filter(([, c]) => c !== 2 && c !== 12);
    const at = (c: number) => base.findIndex(([, cc]) => cc > c);
    // A duplicate in cell 13 inside its run, and one in cell 3 that only comes at the end of
    // the file (after the file stopped being cell-major): the lower cell is reported.
    const cellMajor = base.slice();
    cellMajor.splice(at(12), 0, [4, 12, 1], [9, 12, 2], [4, 12, 5]);
    const late = cellMajor.slice();
    late.splice(at(2), 0, [7, 2, 1]);
    late.push([7, 2, 3]);
    const cases: [string, Entry[], string][] = [
      ["in-run", cellMajor, "duplicate entry for feature 5, cell 13"],
      ["late", late, "duplicate entry for feature 8, cell 3"],
      ["shuffled", shuffle(rng, late.slice()), "duplicate entry for feature 8, cell 3"],
    ];
    for (const [name, entries, msg] of cases) {
      for (const gz of [false, true]) {
        const dir = tenxDir(mtxText(rng, 30, 20, entries, false), 30, 20, gz);
        const want = await outcome(() => readTenxMtxDir(dir));
        expect(want, name).toBe(`${join(dir, gz ? "matrix.mtx.gz" : "matrix.mtx")}: ${msg}`);
        for (const chunkBytes of [7, undefined]) expect(await outcome(() => readTenxMtxDirCounts(dir, { chunkBytes })), name).toBe(want);
      }
    }
  });

  it("every bad MTX directory (and bad random texts) gives readTenxMtxDir's error at every chunk size", async () => {
    const bad = join(REPO, "test/fixtures/bad");
    // Every directory: the .h5/.h5ad ones fail as MTX directories too (no matrix.mtx).
    const dirs = readdirSync(bad).filter((d) => statSync(join(bad, d)).isDirectory());
    expect(dirs.filter((d) => readdirSync(join(bad, d)).some((f) => f.startsWith("matrix.mtx"))).length).toBeGreaterThanOrEqual(17);
    for (const d of dirs) {
      const dir = join(bad, d);
      const want = await outcome(() => readTenxMtxDir(dir));
      expect(await outcome(() => readTenxMtxDirAsync(dir, { stream: true })), d).toBe(want);
      for (const chunkBytes of [1, 7, undefined]) expect(await outcome(() => readTenxMtxDirCounts(dir, { chunkBytes })), `${d} / ${chunkBytes}`).toBe(want);
    }
    const h = "%%MatrixMarket matrix coordinate integer general\n";
    const texts = [
      h + "3 2 3\n1 1 2\n2 1 2.5\n3 2 1\n", // non-integer value
      h + "3 2 3\n1 1 2\n2 2 -1\n3 2 1\n",
      h + "3 2 2\n1 1 2\n2 1 70000\n3 2 1\n", // more entries, after a widening
      h + "3 2 3\n1 2 2\n1 1 2\n", // truncated after leaving cell-major order
      h + "3 2 2\n1 1 2\n4 1 1\n",
      h + "3 2 2\n1 1 2\n2 3 1\n",
      h + "3 2 2\n1 1 2\n2 1 nan\n",
      h + "3 2 2\n1 1 2\n2 1\n",
      h + "3 2\n",
      "%%MatrixMarket matrix coordinate real general\n3 2 1\n1 1 0.5\n",
      "%%MatrixMarket matrix array real general\n3 2\n",
      "",
    ];
    for (const t of texts) {
      for (const gz of [false, true]) {
        const dir = tenxDir(t, 3, 2, gz);
        const want = await outcome(() => readTenxMtxDir(dir));
        expect(want, t).not.toBe("ok");
        for (const chunkBytes of [1, 5, undefined]) expect(await outcome(() => readTenxMtxDirCounts(dir, { chunkBytes })), `${JSON.stringify(t)} / ${chunkBytes}`).toBe(want);
      }
    }
    // The parse error comes before a features/barcodes mismatch, as in readTenxMtxDir.
    const mismatch = tenxDir(h + "3 2 1\n1 1 2.5\n", 4, 2, false);
    const want = await outcome(() => readTenxMtxDir(mismatch));
    expect(want).toContain("line 3: value '2.5' is not a non-negative integer count");
    expect(await outcome(() => readTenxMtxDirCounts(mismatch))).toBe(want);
  });
});

describe("readInputCounts", () => {
  const cases = JSON.parse(readFileSync(join(REPO, "test/fixtures/bad/cases.json"), "utf8")) as { name: string; input: string; flag?: string }[];

  it("bad-input corpus: readInput's error for every case", async () => {
    for (const c of cases.filter((x) => x.flag !== "pipeline")) {
      const want = await outcome(() => readInput(c.input));
      expect(want, c.name).not.toBe("ok");
      expect(await outcome(() => readInputCounts(c.input)), c.name).toBe(want);
    }
    expect(await outcome(() => readInputCounts(join(tmp, "nope")))).toBe(await outcome(() => readInput(join(tmp, "nope"))));
  });

  it("CITE-seq MTX: X keeps Gene Expression, other types in altExperiments, equal to readInput", async () => {
    const dir = join(SHARED, "citeseq_eccite_pbmc_ctrl500");
    const c = await readInputCounts(dir);
    const m = await readInput(dir);
    sameMatrix(c, m, "citeseq");
    expect([...c.altExperiments!.keys()].sort()).toEqual(["Antibody Capture", "Multiplexing Capture"]);
  });

  it(".h5 (v2, written by h5py) and .h5ad (written by anndata) equal readInput, compacted", async () => {
    const h5 = join(tmp, "small_v2.h5");
    const py = (code: string, ...args: string[]) => {
      const r = spawnSync(python(), ["-c", code, ...args], { encoding: "utf8", cwd: REPO });
      if (r.status !== 0) throw new Error(`python failed:\n${r.stderr}`);
    };
    py(readFileSync(join(REPO, "test/fixtures/make_tenx_h5.py"), "utf8"), join(SHARED, "pbmc_small_seurat"), h5, "v2");
    const a = await readInputCounts(h5);
    sameMatrix(a, await readInput(h5), "h5");
    expect(a.X.data).toBeInstanceOf(Uint16Array);
    const h5ad = join(tmp, "norm.h5ad");
    py(
      `
import sys, numpy as np, scipy.sparse as sp, pandas as pd, anndata
X = np.array([[1,0,2],[0,0,70000],[4,5,0],[0,6,0]], dtype=np.float32)
a = anndata.AnnData(sp.csr_matrix(np.log1p(X)), obs=pd.DataFrame(index=["c0","c1","c2","c3"]),
    var=pd.DataFrame({"gene_ids": ["E1","E2","E3"]}, index=["A","B","C"]), layers={"counts": sp.csr_matrix(X)})
a.write_h5ad(sys.argv[1])
`,
      h5ad,
    );
    const b = await readInputCounts(h5ad);
    const ref = await readInput(h5ad);
    sameMatrix(b, ref, "h5ad");
    expect(b.note).toContain("layers/counts");
    expect(b.X.data).toBeInstanceOf(Float32Array);
  });
});
