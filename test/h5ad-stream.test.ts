/**
 * Streamed h5ad I/O: writeH5ad with X/layers as Csr, CountMatrix or RowBlocks stores the same
 * arrays (same dtypes, same values, read back raw with h5wasm); readH5adCounts equals
 * compactCounts(readH5ad(...).X) on our files and on files written by anndata 0.8, keeps uint16
 * values until one does not fit (then float32), and fails with readH5ad's exact errors.
 * Needs Debian's python3-anndata for the anndata tests (fails, naming the package, without it).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import h5wasm, { Dataset } from "h5wasm/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CountCellMatrix } from "../src/core/cellMatrix.js";
import type { CountMatrix } from "../src/core/counts.js";
import { compactCounts } from "../src/core/counts.js";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { readH5ad, readH5adCounts, writeH5ad } from "../src/io/h5ad.js";
import type { AnalysisResult, RowBlocks, SparseOut } from "../src/pipeline/result.js";
import { python } from "./helpers/python.js";

const REPO = join(import.meta.dirname, "..");
let tmp: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "cellgpu-h5ad-stream-"));
  await h5wasm.ready;
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Random integer counts, about `density` nonzeros per entry, every `emptyEvery`-th row empty. */
function randomCounts(seed: number, nRows: number, nCols: number, density: number, emptyEvery = 7, maxCount = 50): Csr {
  const rng = new Rng(seed);
  const indptr = new Float64Array(nRows + 1);
  const perRow = Math.max(1, Math.round(density * nCols));
  const idx: number[] = [];
  const val: number[] = [];
  for (let r = 0; r < nRows; r++) {
    if (r % emptyEvery !== 3) {
      let c = Math.floor(rng.nextFloat() * 3);
      const step = Math.max(1, Math.floor(nCols / perRow));
      while (c < nCols) {
        idx.push(c);
        val.push(1 + Math.floor(rng.nextFloat() * maxCount));
        c += 1 + Math.floor(rng.nextFloat() * 2 * step);
      }
    }
    indptr[r + 1] = idx.length;
  }
  return { nRows, nCols, indptr, indices: Uint32Array.from(idx), data: Float32Array.from(val) };
}

/** Large random counts built straight into typed arrays (nnz ≈ nRows · perRow). */
function bigCounts(seed: number, nRows: number, nCols: number, perRow: number): Csr {
  const rng = new Rng(seed);
  const nnz = nRows * perRow;
  const indptr = new Float64Array(nRows + 1);
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  const stride = Math.floor(nCols / perRow);
  let o = 0;
  for (let r = 0; r < nRows; r++) {
    const n = r % 5 === 0 ? 0 : perRow; // every fifth row empty
    for (let j = 0; j < n; j++) {
      indices[o] = j * stride + (rng.nextU32() % stride);
      data[o++] = 1 + (rng.nextU32() % 30);
    }
    indptr[r + 1] = o;
  }
  return { nRows, nCols, indptr, indices: indices.subarray(0, o), data: data.subarray(0, o) };
}

/** log1p values as the lead's RowBlocks would carry (non-integer floats). */
function logOf(m: Csr): Csr {
  return { ...m, data: m.data.map((v) => Math.log1p(v)) };
}

/** RowBlocks over m with the given block sizes, cycled (0 = an empty block). */
function asRowBlocks(m: Csr, sizes: number[]): RowBlocks {
  return {
    kind: "rowBlocks",
    nRows: m.nRows,
    nCols: m.nCols,
    nnz: m.indptr[m.nRows],
    *blocks() {
      let r0 = 0;
      for (let i = 0; r0 < m.nRows; i++) {
        const r1 = Math.min(m.nRows, r0 + sizes[i % sizes.length]);
        const a = m.indptr[r0];
        const b = m.indptr[r1];
        const indptr = new Float64Array(r1 - r0 + 1);
        for (let r = r0; r <= r1; r++) indptr[r - r0] = m.indptr[r] - a;
        yield { nRows: r1 - r0, nCols: m.nCols, indptr, indices: m.indices.slice(a, b), data: m.data.slice(a, b) };
        r0 = r1;
      }
    },
  };
}

function result(X: SparseOut, layers: [string, SparseOut][] = []): AnalysisResult {
  return {
    X,
    layers: new Map(layers),
    obs: { index: Array.from({ length: X.nRows }, (_, i) => `cell${i}`), columns: new Map() },
    var: { index: Array.from({ length: X.nCols }, (_, i) => `gene${i}`), columns: new Map() },
    obsm: new Map(),
    varm: new Map(),
    obsp: new Map(),
    uns: {},
  };
}

interface RawCsr {
  shape: number[];
  encoding: string;
  dtypes: string[];
  data: Float32Array;
  indices: Int32Array;
  indptr: number[];
}

/** The csr_matrix group at `name` exactly as stored. */
function rawCsr(path: string, name: string): RawCsr {
  const f = new h5wasm.File(path, "r");
  try {
    const g = f.get(name) as unknown as { get(n: string): Dataset; get_attribute(n: string, json: boolean): unknown };
    const ds = ["data", "indices", "indptr"].map((n) => g.get(n));
    const indptr = ds[2].value as Int32Array | BigInt64Array;
    return {
      shape: Array.from(g.get_attribute("shape", false) as BigInt64Array, Number),
      encoding: String(g.get_attribute("encoding-type", false)),
      dtypes: ds.map((d) => String(d.dtype)),
      data: ds[0].value as Float32Array,
      indices: ds[1].value as Int32Array,
      indptr: Array.from(indptr, Number),
    };
  } finally {
    f.close();
  }
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function expectSameRaw(a: RawCsr, b: RawCsr): void {
  expect([a.shape, a.encoding, a.dtypes]).toEqual([b.shape, b.encoding, b.dtypes]);
  expect(firstDiff(a.indptr, b.indptr)).toBe(-1);
  expect(firstDiff(a.indices, b.indices)).toBe(-1);
  expect(firstDiff(a.data, b.data)).toBe(-1);
}

/** The stored arrays equal the matrix's own (independent of our reader). */
function expectRawIs(a: RawCsr, m: Csr): void {
  const nnz = m.indptr[m.nRows];
  expect(a.shape).toEqual([m.nRows, m.nCols]);
  expect(a.encoding).toBe("csr_matrix");
  expect(a.dtypes).toEqual(["<f", "<i", "<i"]);
  expect(firstDiff(a.indptr, m.indptr)).toBe(-1);
  expect(firstDiff(a.indices, m.indices.subarray(0, nnz))).toBe(-1);
  expect(firstDiff(a.data, m.data.subarray(0, nnz))).toBe(-1);
}

function expectSameCounts(a: CountMatrix, b: CountMatrix): void {
  expect([a.kind, a.nRows, a.nCols, a.indices.constructor, a.data.constructor]).toEqual([b.kind, b.nRows, b.nCols, b.indices.constructor, b.data.constructor]);
  expect(firstDiff(a.indptr, b.indptr)).toBe(-1);
  expect(firstDiff(a.indices, b.indices)).toBe(-1);
  expect(firstDiff(a.data, b.data)).toBe(-1);
}

/** readH5adCounts equals compactCounts(readH5ad(...).X), tables and note included. */
async function expectCountsMatch(path: string): Promise<CountCellMatrix> {
  const full = await readH5ad(path);
  const compact = await readH5adCounts(path);
  expectSameCounts(compact.X, compactCounts(full.X));
  expect(compact.obs).toEqual(full.obs);
  expect(compact.var).toEqual(full.var);
  expect(compact.note).toEqual(full.note);
  expect(compact.source).toBe(full.source);
  return compact;
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
  }
  return "no error";
}

describe("writeH5ad: Csr, CountMatrix and RowBlocks store the same matrix", () => {
  it("small matrices, blocks of 1 row, empty blocks, empty rows, uint16 and uint32 indices", async () => {
    for (const [seed, nRows, nCols] of [
      [1, 57, 40],
      [2, 9, 66000],
      [3, 1, 5],
    ] as const) {
      const counts = randomCounts(seed, nRows, nCols, 0.05, 5, seed === 2 ? 70000 : 50);
      const X = logOf(counts);
      const forms: [string, SparseOut, SparseOut][] = [
        ["csr", X, counts],
        ["rows1", asRowBlocks(X, [1]), compactCounts(counts)],
        ["mixed", asRowBlocks(X, [3, 0, 1, 10, 2]), compactCounts(counts)],
        ["whole", asRowBlocks(X, [nRows]), counts],
      ];
      const raws: RawCsr[] = [];
      for (const [name, x, layer] of forms) {
        const p = join(tmp, `small-${seed}-${name}.h5ad`);
        await writeH5ad(p, result(x, [["counts", layer]]));
        const raw = rawCsr(p, "X");
        expectRawIs(raw, X);
        expectRawIs(rawCsr(p, "layers/counts"), counts);
        raws.push(raw);
        if (name !== "mixed") continue;
        const m = await expectCountsMatch(p);
        expect(m.note).toContain("layers/counts");
        expect(m.X.indices).toBeInstanceOf(nCols > 65536 ? Uint32Array : Uint16Array);
      }
      for (const r of raws.slice(1)) expectSameRaw(r, raws[0]);
    }
  });

  it("an all-empty matrix and a matrix with no rows", async () => {
    const empty: Csr = { nRows: 4, nCols: 3, indptr: new Float64Array(5), indices: new Uint32Array(0), data: new Float32Array(0) };
    const noRows: Csr = { nRows: 0, nCols: 3, indptr: new Float64Array(1), indices: new Uint32Array(0), data: new Float32Array(0) };
    for (const m of [empty, noRows]) {
      for (const x of [m, compactCounts(m), asRowBlocks(m, [2])]) {
        const p = join(tmp, `empty-${m.nRows}.h5ad`);
        await writeH5ad(p, result(x));
        expectRawIs(rawCsr(p, "X"), m);
      }
    }
  });

  it("RowBlocks that disagree with their declared size are rejected and leave no file", async () => {
    const X = randomCounts(4, 20, 10, 0.3);
    const p = join(tmp, "bad-blocks.h5ad");
    const short: RowBlocks = { ...asRowBlocks(X, [3]), nRows: 21 };
    expect(await errorOf(writeH5ad(p, result(short)))).toContain("blocks gave 20 rows");
    const tooMany: RowBlocks = { ...asRowBlocks(X, [3]), nnz: X.indptr[20] - 1 };
    expect(await errorOf(writeH5ad(p, result(tooMany)))).toContain("does not fit");
    expect(await errorOf(readH5ad(p))).toContain("cannot read file (ENOENT)");
  });

  it("17M nonzeros (past one 64 MiB write slice, inside a block; many chunks): RowBlocks stores the matrix; readH5adCounts widens in a late slice", async () => {
    const counts = bigCounts(5, 70000, 30000, 300);
    const nnz = counts.indptr[counts.nRows];
    expect(nnz).toBeGreaterThan((64 << 20) / 4);
    // A value past uint16 in the last 8M-element read slice: the first slices are read as
    // uint16 and widened there.
    counts.data[nnz - 2] = 123456;
    const pBlocks = join(tmp, "big-blocks.h5ad");
    // The 60000-row block (13.4M nonzeros) crosses the first 16.8M-element write slice.
    await writeH5ad(pBlocks, result(asRowBlocks(counts, [4099, 1, 0, 60000])));
    expectRawIs(rawCsr(pBlocks, "X"), counts);
    const m = (await readH5adCounts(pBlocks)).X;
    expect(m.data).toBeInstanceOf(Float32Array);
    expect(m.indices).toBeInstanceOf(Uint16Array);
    expect(firstDiff(m.indptr, counts.indptr)).toBe(-1);
    expect(firstDiff(m.indices, counts.indices)).toBe(-1);
    expect(firstDiff(m.data, counts.data)).toBe(-1);
  }, 60000);
});

describe("readH5adCounts", () => {
  it("widens at the first value (one read slice) and keeps float32 past 2^24 exactly as readH5ad", async () => {
    const m = randomCounts(6, 30, 12, 0.4);
    m.data[0] = 65536;
    m.data[5] = 2 ** 24 + 1; // float32 rounds it, as in readH5ad
    const p = join(tmp, "wide-first.h5ad");
    await writeH5ad(p, result(m));
    const c = (await expectCountsMatch(p)).X;
    expect(c.data).toBeInstanceOf(Float32Array);
    expect([c.data[0], c.data[5]]).toEqual([65536, 2 ** 24]);
    m.data[0] = 65535;
    m.data[5] = 1;
    await writeH5ad(p, result(m));
    expect((await expectCountsMatch(p)).X.data).toBeInstanceOf(Uint16Array);
  });

  it("gives readH5ad's exact error for every bad h5ad fixture and for corrupted CSR arrays", async () => {
    const cases = JSON.parse(readFileSync(join(REPO, "test/fixtures/bad/cases.json"), "utf8")) as { name: string; input: string }[];
    const inputs = cases.filter((c) => c.input.endsWith(".h5ad")).map((c) => join(REPO, c.input));
    expect(inputs.length).toBeGreaterThanOrEqual(6);

    // Our own file, then one defect each, written in place with h5wasm.
    const base = randomCounts(7, 12, 9, 0.4, 100);
    const defects: [string, string, number, number][] = [
      ["noninteger", "X/data", 4, 2.5],
      ["negative", "X/data", 7, -1],
      ["index_range", "X/indices", 5, 9],
      ["duplicate", "X/indices", 1, -1], // -1: copy of the previous index
      ["unsorted", "X/indices", 1, -2], // -2: swap with the previous index
      ["indptr_decreasing", "X/indptr", 3, 0],
      ["indptr_end", "X/indptr", 12, 1],
    ];
    for (const [name, ds, at, v] of defects) {
      const p = join(tmp, `defect-${name}.h5ad`);
      await writeH5ad(p, result(base));
      const f = new h5wasm.File(p, "a");
      const d = f.get(ds) as Dataset;
      const arr = d.value as Float32Array | Int32Array;
      if (v === -1) arr[at] = arr[at - 1];
      else if (v === -2) [arr[at - 1], arr[at]] = [arr[at], arr[at - 1]];
      else arr[at] = ds.endsWith("indptr") && v === 1 ? arr[at] + 1 : v;
      d.write_slice([[0, arr.length]], arr);
      f.close();
      inputs.push(p);
    }
    const seen: string[] = [];
    for (const p of inputs) {
      const want = await errorOf(readH5ad(p));
      const got = await errorOf(readH5adCounts(p));
      expect(got, p).toBe(want);
      seen.push(want);
      if (want === "no error") await expectCountsMatch(p);
    }
    // The corruptions hit the intended checks (unsorted rows are sorted, not rejected).
    const joined = seen.join("\n");
    for (const s of ["(not an integer)", "(negative)", "out of range 0..8", "duplicate index", "decreases at entry", "must run from 0 to", "not an HDF5 file", "no X matrix"]) {
      expect(joined).toContain(s);
    }
  });
});

describe("anndata 0.8", () => {
  function runPython(code: string, ...args: string[]): string {
    const r = spawnSync(python(), ["-c", code, ...args], { encoding: "utf8", cwd: REPO });
    if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  it("reads a RowBlocks X and CountMatrix layer as the same matrices as the Csr-written file", async () => {
    const counts = randomCounts(8, 300, 500, 0.05);
    const X = logOf(counts);
    const pCsr = join(tmp, "ad-csr.h5ad");
    const pBlocks = join(tmp, "ad-blocks.h5ad");
    await writeH5ad(pCsr, result(X, [["counts", counts]]));
    await writeH5ad(pBlocks, result(asRowBlocks(X, [1, 17, 0, 64]), [["counts", compactCounts(counts)]]));
    const out = runPython(
      `
import sys, warnings, numpy as np, anndata
warnings.simplefilter("error")
a, b = anndata.read_h5ad(sys.argv[1]), anndata.read_h5ad(sys.argv[2])
for x, y in [(a.X, b.X), (a.layers["counts"], b.layers["counts"])]:
    assert x.format == y.format == "csr" and x.dtype == y.dtype == np.float32, (x.format, y.format, x.dtype, y.dtype)
    assert x.shape == y.shape == (300, 500)
    assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices) and np.array_equal(x.data, y.data)
assert np.allclose(np.expm1(b.X.toarray()), b.layers["counts"].toarray(), rtol=1e-5)
print("SAME", b.X.nnz)
`,
      pCsr,
      pBlocks,
    );
    expect(out).toContain(`SAME ${counts.indptr[300]}`);
  });

  it("readH5adCounts equals compactCounts(readH5ad) on anndata-written CSR (gzip, layers/counts), CSC and dense files", async () => {
    const base = join(tmp, "from_anndata");
    runPython(
      `
import sys, numpy as np, pandas as pd, scipy.sparse as sp, anndata
rng = np.random.default_rng(0)
X = (rng.random((40, 30)) < 0.2) * rng.integers(1, 90000, (40, 30))
X[5] = 0
X = X.astype(np.float32)
obs = pd.DataFrame({"cl": pd.Categorical(rng.choice(["a", "b"], 40))}, index=[f"c{i}" for i in range(40)])
var = pd.DataFrame({"gene_ids": [f"E{i}" for i in range(30)]}, index=[f"G{i % 25}" for i in range(30)])
anndata.AnnData(sp.csr_matrix(X), obs=obs, var=var).write_h5ad(sys.argv[1] + "_csr.h5ad")
anndata.AnnData(sp.csc_matrix(X), obs=obs, var=var).write_h5ad(sys.argv[1] + "_csc.h5ad")
anndata.AnnData(X, obs=obs, var=var).write_h5ad(sys.argv[1] + "_dense.h5ad")
small = np.minimum(X, 60000)
anndata.AnnData(sp.csr_matrix(np.log1p(small)), obs=obs, var=var, layers={"counts": sp.csr_matrix(small)}).write_h5ad(sys.argv[1] + "_norm.h5ad", compression="gzip")
`,
      base,
    );
    for (const kind of ["csr", "csc", "dense", "norm"]) {
      const m = (await expectCountsMatch(`${base}_${kind}.h5ad`)).X;
      expect(m.data.constructor, kind).toBe(kind === "norm" ? Uint16Array : Float32Array);
      expect(m.indices).toBeInstanceOf(Uint16Array);
    }
  });
});
