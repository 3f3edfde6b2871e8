/**
 * I/O layer: the bad-input corpus, the MTX parser against an independent string parse of
 * pbmc3k, 10x .h5 written by h5py equals the MTX read, h5ad round trips (ours → ours,
 * ours → anndata 0.8, anndata → ours), Arrow IPC round trip and atomic writes.
 * Needs a Python with anndata + h5py (Debian python3-anndata): scripts/setup-anndata.sh finds or
 * installs it; without it the Python tests fail, naming the package.
 */
import { python } from "./helpers/python.js";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { tableFromIPC } from "apache-arrow";
import h5wasm from "h5wasm/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Column, Table } from "../src/core/cellMatrix.js";
import { fromDense, toDense } from "../src/core/csr.js";
import type { Csr } from "../src/core/csr.js";
import { writeCellsArrow } from "../src/io/arrow.js";
import { InputError } from "../src/io/errors.js";
import { readTenxH5 } from "../src/io/h5.js";
import { readH5ad, writeArray, writeH5ad } from "../src/io/h5ad.js";
import { readNumbers } from "../src/io/h5util.js";
import { parseMtx, parseMtxChunks, readTenxMtxDir, readTenxMtxDirAsync } from "../src/io/mtx.js";
import { readInput } from "../src/io/read.js";
import type { AnalysisResult } from "../src/pipeline/result.js";

const REPO = join(import.meta.dirname, "..");
const PBMC3K = join(REPO, "datasets/pbmc3k");
const SHARED = "/work/shared/datasets";
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "cellgpu-io-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runPython(code: string, ...args: string[]): string {
  const r = spawnSync(python(), ["-c", code, ...args], { encoding: "utf8", cwd: REPO });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Index of the first difference between two numeric arrays (-1 if equal); cheap on millions. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function sameCsr(a: Csr, b: Csr): void {
  expect([a.nRows, a.nCols]).toEqual([b.nRows, b.nCols]);
  const na = a.indptr[a.nRows];
  const nb = b.indptr[b.nRows];
  expect(firstDiff(a.indptr, b.indptr)).toBe(-1);
  expect(firstDiff(a.indices.subarray(0, na), b.indices.subarray(0, nb))).toBe(-1);
  expect(firstDiff(a.data.subarray(0, na), b.data.subarray(0, nb))).toBe(-1);
}

describe("bad-input corpus", () => {
  const cases = JSON.parse(readFileSync(join(REPO, "test/fixtures/bad/cases.json"), "utf8")) as {
    name: string;
    input: string;
    expect: string;
    flag?: string;
  }[];
  const readerCases = cases.filter((c) => c.flag !== "pipeline");

  it("lists the cases the I/O layer must reject", () => {
    const names = cases.map((c) => c.name);
    for (const n of ["mtx_truncated_gzip", "mtx_dims_mismatch", "mtx_row_out_of_range", "mtx_negative_count", "mtx_nan_count", "mtx_noninteger_count", "missing_barcodes", "missing_features", "barcodes_count_mismatch", "empty_matrix", "duplicate_barcodes", "h5_truncated", "h5ad_truncated", "h5ad_without_X", "all_filtered"]) {
      expect(names).toContain(n);
    }
    for (const c of cases) expect(existsSync(join(REPO, c.input)), c.input).toBe(true);
  });

  it.each(readerCases.map((c) => [c.name, c] as const))("%s → InputError naming the file", async (_name, c) => {
    let err: unknown;
    try {
      await readInput(c.input);
    } catch (e) {
      err = e;
    }
    expect(err, `${c.name} should throw`).toBeInstanceOf(InputError);
    const msg = (err as InputError).message;
    expect(msg).toContain(c.input);
    expect(msg).toContain(c.expect);
    expect(msg.startsWith((err as InputError).file)).toBe(true);
  });

  it("all_filtered reads fine and every cell has < 200 genes (the pipeline rejects it)", async () => {
    const c = cases.find((x) => x.name === "all_filtered")!;
    expect(c.flag).toBe("pipeline");
    const m = await readInput(c.input);
    expect(m.X.nRows).toBeGreaterThan(0);
    for (let r = 0; r < m.X.nRows; r++) expect(m.X.indptr[r + 1] - m.X.indptr[r]).toBeLessThan(200);
  });
});

describe("MTX", () => {
  it("pbmc3k: shape, nnz, total, and per-cell sums equal a naive string parse", () => {
    const t0 = performance.now();
    const m = readTenxMtxDir(PBMC3K);
    const ms = performance.now() - t0;
    console.log(`readTenxMtxDir(pbmc3k): ${ms.toFixed(0)} ms`);
    expect([m.X.nRows, m.X.nCols]).toEqual([2700, 32738]);
    expect(m.X.indptr[2700]).toBe(2286884);
    let total = 0;
    for (const v of m.X.data) total += v;
    expect(total).toBe(6390631);
    // Independent: split lines and fields, accumulate per cell.
    const lines = gunzipSync(readFileSync(join(PBMC3K, "matrix.mtx.gz"))).toString("utf8").split("\n");
    const sums = new Float64Array(2700);
    const nnz = new Float64Array(2700);
    const genes = new Float64Array(2700);
    let seenSize = false;
    for (const l of lines) {
      if (l.startsWith("%") || l.trim() === "") continue;
      if (!seenSize) {
        seenSize = true;
        continue;
      }
      const [g, c, v] = l.split(" ").map(Number);
      sums[c - 1] += v;
      nnz[c - 1]++;
      genes[c - 1] += g * v;
    }
    const mySums = new Float64Array(2700);
    const myNnz = new Float64Array(2700);
    const myGenes = new Float64Array(2700);
    let unsorted = 0;
    for (let c = 0; c < 2700; c++) {
      myNnz[c] = m.X.indptr[c + 1] - m.X.indptr[c];
      for (let k = m.X.indptr[c]; k < m.X.indptr[c + 1]; k++) {
        mySums[c] += m.X.data[k];
        myGenes[c] += (m.X.indices[k] + 1) * m.X.data[k];
        if (k > m.X.indptr[c] && m.X.indices[k] <= m.X.indices[k - 1]) unsorted++;
      }
    }
    expect(firstDiff(mySums, sums)).toBe(-1);
    expect(firstDiff(myNnz, nnz)).toBe(-1);
    expect(firstDiff(myGenes, genes)).toBe(-1);
    expect(unsorted).toBe(0);
    expect(m.obs.index[0]).toBe("AAACATACAACCAC-1");
    expect(m.var.columns.get("gene_ids")).toMatchObject({ kind: "string" });
  });

  it("accepts CRLF, tabs, comments, blank lines, exponents and unsorted entries", () => {
    const text =
      "%%MatrixMarket matrix coordinate integer general\r\n%comment\r\n\r\n3 2 4\r\n" +
      "2\t2\t1e1\r\n1 1 3\r\n\r\n  3 1 +2 \r\n2 1 0007\r\n";
    const coo = parseMtx("t.mtx", text);
    expect(Array.from(coo.rows)).toEqual([1, 0, 2, 1]);
    expect(Array.from(coo.cols)).toEqual([1, 0, 0, 0]);
    expect(Array.from(coo.values)).toEqual([10, 3, 2, 7]);
    const real = parseMtx("r.mtx", "%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 0.5\n2 2 -1.25e-1\n", false);
    expect(Array.from(real.values)).toEqual([0.5, -0.125]);
    expect(() => parseMtx("r.mtx", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 0.5\n")).toThrow(
      "r.mtx: line 3: value '0.5' is not a non-negative integer count",
    );
    expect(() => parseMtx("x.mtx", "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 0 5\n")).toThrow(
      "x.mtx: line 3: column index '0' out of range 1..2",
    );
    expect(() => parseMtx("x.mtx", "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 5 6\n")).toThrow(
      "x.mtx: line 3: expected 'row col value', found 4 field(s)",
    );
  });
});

/** The pieces of `bytes` cut every `size` bytes, as an async stream. */
async function* cut(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
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

/** A 10x directory in tmp holding `mtx` (gzipped when `gz`) and pbmc3k's features and barcodes. */
function tenxDir(name: string, mtx: string | Buffer, gz: boolean): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, gz ? "matrix.mtx.gz" : "matrix.mtx"), gz ? gzipSync(mtx) : mtx);
  for (const f of ["features.tsv.gz", "barcodes.tsv.gz"]) copyFileSync(join(PBMC3K, f), join(dir, f));
  return dir;
}

describe("MTX streaming", () => {
  const text = () => gunzipSync(readFileSync(join(PBMC3K, "matrix.mtx.gz")));

  it("pbmc3k streamed (gz and plain) equals the whole-buffer read", async () => {
    const whole = readTenxMtxDir(PBMC3K);
    const t0 = performance.now();
    const streamed = await readTenxMtxDirAsync(PBMC3K, { stream: true });
    console.log(`pbmc3k matrix.mtx.gz: streamed ${(performance.now() - t0).toFixed(0)} ms`);
    sameCsr(streamed.X, whole.X);
    expect(streamed.obs.index).toEqual(whole.obs.index);
    expect(streamed.var).toEqual(whole.var);
    const plain = tenxDir("plain", text(), false);
    const t1 = performance.now();
    const p = await readTenxMtxDirAsync(plain, { stream: true });
    console.log(`pbmc3k matrix.mtx (plain): streamed ${(performance.now() - t1).toFixed(0)} ms`);
    sameCsr(p.X, whole.X);
    // Small files are not streamed unless asked; both paths agree anyway.
    sameCsr((await readTenxMtxDirAsync(plain)).X, whole.X);
  });

  it("tiny chunks on the first 2000 lines of pbmc3k (gz and plain, shuffled too) equal the whole read", async () => {
    const lines = text().toString("utf8").split("\n");
    const head = lines.slice(0, 2000);
    const entries = head.slice(3);
    const body = [head[0], head[1], `32738 2700 ${entries.length}`, ...entries].join("\n") + "\n";
    // A fixed permutation: the unsorted path (counting sort by cell, features sorted per cell).
    const shuffled = entries.map((l, i) => [(i * 7919) % entries.length, l] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
    const bodyShuffled = [head[0], head[1], `32738 2700 ${entries.length}`, ...shuffled].join("\r\n");
    const ref = readTenxMtxDir(tenxDir("head-ref", body, false)).X;
    // Independent: CSR from the entries by a string parse and a sort by (cell, feature).
    const triples = entries.map((l) => l.split(" ").map(Number)).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    expect(Array.from(ref.indices.subarray(0, ref.indptr[2700]))).toEqual(triples.map((t) => t[0] - 1));
    expect(Array.from(ref.data.subarray(0, ref.indptr[2700]))).toEqual(triples.map((t) => t[2]));
    for (const [name, mtx] of [["head", body], ["shuffled", bodyShuffled]] as const) {
      for (const gz of [false, true]) {
        const dir = tenxDir(`${name}-${gz}`, mtx, gz);
        sameCsr(readTenxMtxDir(dir).X, ref);
        for (const chunkBytes of [1, 7, 64, 4096]) sameCsr((await readTenxMtxDirAsync(dir, { stream: true, chunkBytes })).X, ref);
      }
    }
  });

  it("every bad MTX directory gives the same error streamed (7-byte chunks, plain and gzipped)", async () => {
    const bad = join(REPO, "test/fixtures/bad");
    const dirs = readdirSync(bad).filter((d) => statSync(join(bad, d)).isDirectory() && readdirSync(join(bad, d)).some((f) => f.startsWith("matrix.mtx")));
    expect(dirs.length).toBeGreaterThanOrEqual(17);
    for (const d of dirs) {
      const src = join(bad, d);
      const variants = [src];
      if (existsSync(join(src, "matrix.mtx"))) {
        const gz = join(tmp, `bad-${d}`);
        mkdirSync(gz);
        for (const f of readdirSync(src)) {
          if (f === "matrix.mtx") writeFileSync(join(gz, "matrix.mtx.gz"), gzipSync(readFileSync(join(src, f))));
          else copyFileSync(join(src, f), join(gz, f));
        }
        variants.push(gz);
      }
      for (const dir of variants) {
        const whole = await outcome(() => readTenxMtxDir(dir));
        for (const chunkBytes of [7, 1]) expect(await outcome(() => readTenxMtxDirAsync(dir, { stream: true, chunkBytes })), dir).toBe(whole);
      }
    }
    expect(await outcome(() => readTenxMtxDirAsync(join(bad, "mtx_truncated_gzip"), { stream: true }))).toContain("not a valid gzip file (truncated or corrupt)");
    expect(await outcome(() => readTenxMtxDirAsync(join(bad, "mtx_nan_count"), { stream: true, chunkBytes: 7 }))).toContain("line 4: value 'nan' is not a finite number");
  });

  it("parseMtxChunks cut at every size gives parseMtx's entries and errors on edge-case text", async () => {
    const texts = [
      "%%MatrixMarket matrix coordinate integer general\r\n%comment\r\n\r\n3 2 4\r\n2\t2\t1e1\r\n1 1 3\r\n\r\n  3 1 +2 \r\n2 1 0007",
      "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 5 6\n",
      "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 5\n",
      "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 5\n2 2 1\n",
      "%%MatrixMarket matrix coordinate integer general\n% only comments\n",
      "%%MatrixMarket matrix array real general\n",
      "",
      "%%MatrixMarket matrix coordinate integer general\n2 2 x\n",
    ];
    for (const t of texts) {
      const bytes = Buffer.from(t, "utf8");
      const whole = await outcome(() => parseMtx("t.mtx", bytes));
      expect(whole === "ok" || whole.startsWith("t.mtx: ")).toBe(true);
      const ref = whole === "ok" ? parseMtx("t.mtx", bytes) : undefined;
      for (let size = 1; size <= Math.max(1, bytes.length); size++) {
        expect(await outcome(() => parseMtxChunks("t.mtx", cut(bytes, size))), `${JSON.stringify(t)} / ${size}`).toBe(whole);
        if (ref) expect(await parseMtxChunks("t.mtx", cut(bytes, size))).toEqual(ref);
      }
    }
  });
});

describe("10x .h5", () => {
  it("v3 file written by h5py from pbmc3k equals readTenxMtxDir", async () => {
    const h5 = join(tmp, "pbmc3k.h5");
    runPython(readFileSync(join(REPO, "test/fixtures/make_tenx_h5.py"), "utf8"), PBMC3K, h5, "v3");
    const t0 = performance.now();
    const a = await readTenxH5(h5);
    console.log(`readTenxH5(pbmc3k, gzip): ${(performance.now() - t0).toFixed(0)} ms`);
    const b = readTenxMtxDir(PBMC3K);
    sameCsr(a.X, b.X);
    expect(a.obs.index).toEqual(b.obs.index);
    expect(a.var.index).toEqual(b.var.index);
    expect(a.var.columns).toEqual(b.var.columns);
    const viaInput = await readInput(h5);
    expect(viaInput.X.nCols).toBe(32738);
  });

  it("v2 layout (<genome>/genes) equals readTenxMtxDir", async () => {
    const h5 = join(tmp, "small_v2.h5");
    runPython(readFileSync(join(REPO, "test/fixtures/make_tenx_h5.py"), "utf8"), join(SHARED, "pbmc_small_seurat"), h5, "v2");
    const a = await readTenxH5(h5);
    const b = readTenxMtxDir(join(SHARED, "pbmc_small_seurat"));
    sameCsr(a.X, b.X);
    expect(a.obs.index).toEqual(b.obs.index);
    expect(a.var.index).toEqual(b.var.index);
  });
});

describe("feature types", () => {
  it("CITE-seq: X keeps Gene Expression, other types go to altExperiments", async () => {
    const dir = join(SHARED, "citeseq_eccite_pbmc_ctrl500");
    const all = readTenxMtxDir(dir);
    const m = await readInput(dir);
    const types = (all.var.columns.get("feature_types") as { values: string[] }).values;
    const count = (t: string) => types.filter((x) => x === t).length;
    expect(m.X.nCols).toBe(count("Gene Expression"));
    expect([...m.altExperiments!.keys()].sort()).toEqual(["Antibody Capture", "Multiplexing Capture"]);
    const adt = m.altExperiments!.get("Antibody Capture")!;
    expect(adt.X.nCols).toBe(count("Antibody Capture"));
    expect(adt.X.nRows).toBe(m.X.nRows);
    // Totals are preserved across the split.
    const sum = (x: Csr) => x.data.subarray(0, x.indptr[x.nRows]).reduce((a, b) => a + b, 0);
    const parts = sum(m.X) + [...m.altExperiments!.values()].reduce((a, e) => a + sum(e.X), 0);
    expect(parts).toBe(sum(all.X));
    expect(adt.var.index).toEqual(all.var.index.filter((_, i) => types[i] === "Antibody Capture"));
    expect((await readInput(PBMC3K)).altExperiments).toBeUndefined();
  });
});

function synthetic(): AnalysisResult {
  // 5 cells × 4 genes; X integer so that readH5ad can read it back as counts.
  const counts = [1, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0, 6, 0, 7, 8, 0, 1];
  const X = fromDense(counts, 5, 4);
  const obs: Table = {
    index: ["c0", "c1", "c2", "c3", "c4"],
    columns: new Map<string, Column>([
      ["n_counts", { kind: "number", values: new Float32Array([3, 3, 9, 6, 16]) }],
      ["n_genes", { kind: "number", values: new Int32Array([2, 1, 2, 1, 3]) }],
      ["leiden", { kind: "category", codes: new Int32Array([0, 1, 1, 0, 2]), categories: ["0", "1", "2"] }],
      ["passed", { kind: "bool", values: new Uint8Array([1, 0, 1, 1, 0]) }],
      ["sample", { kind: "string", values: ["a", "a", "b", "b", "ü"] }],
    ]),
  };
  const vart: Table = {
    index: ["GeneA", "GeneB", "MT-1", "GeneD"],
    columns: new Map<string, Column>([
      ["gene_ids", { kind: "string", values: ["G1", "G2", "G3", "G4"] }],
      ["feature_types", { kind: "string", values: ["Gene Expression", "Gene Expression", "Gene Expression", "Gene Expression"] }],
      ["highly_variable", { kind: "bool", values: new Uint8Array([1, 0, 1, 0]) }],
      ["means", { kind: "number", values: new Float64Array([0.25, 1.5, 3.125, 0]) }],
    ]),
  };
  return {
    X,
    layers: new Map([["scaled", fromDense(counts.map((v) => v / 2), 5, 4)]]),
    obs,
    var: vart,
    obsm: new Map([["X_pca", { nRows: 5, nCols: 2, data: new Float32Array([0.5, -1, 2, 3, 4, 5, 6, 7, 8, -9.25]) }]]),
    varm: new Map([["PCs", { nRows: 4, nCols: 2, data: new Float64Array([1, 2, 3, 4, 5, 6, 7, 8]) }]]),
    obsp: new Map([["connectivities", fromDense([0, 0.5, 0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 5, 5)]]),
    uns: {
      neighbors: { connectivities_key: "connectivities", params: { n_neighbors: 15, method: "umap", metric: "euclidean" } },
      pca: { variance: new Float32Array([3, 1]), variance_ratio: new Float64Array([0.75, 0.25]) },
      leiden_colors: ["#1f77b4", "#ff7f0e", "#279e68"],
      engine: "cellgpu ✓",
      resolution: 0.5,
      rank_genes_groups: {
        params: { groupby: "leiden", method: "wilcoxon" },
        names: { recarray: { fields: ["0", "1", "2"], columns: [["GeneA", "GeneB"], ["MT-1", "GeneD"], ["GeneD", "GeneA"]] } },
        scores: { recarray: { fields: ["0", "1", "2"], columns: [new Float32Array([2.5, 1]), new Float32Array([3, -1]), new Float32Array([0.5, 0.25])] } },
        pvals: { recarray: { fields: ["0", "1", "2"], columns: [new Float64Array([1e-5, 0.5]), new Float64Array([1e-3, 0.9]), new Float64Array([0.1, 0.2])] } },
      },
    },
  };
}

describe("h5ad", () => {
  it("writeH5ad → readH5ad gives back X, obs and var", async () => {
    const r = synthetic();
    const p = join(tmp, "round.h5ad");
    await writeH5ad(p, r);
    const m = await readH5ad(p);
    sameCsr(m.X, r.X as Csr);
    expect(m.note).toBeUndefined();
    expect(m.obs.index).toEqual(r.obs.index);
    expect(m.obs.columns).toEqual(r.obs.columns);
    expect(m.var.index).toEqual(r.var.index);
    expect(m.var.columns).toEqual(r.var.columns);
    expect(readdirSync(tmp).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it("prefers layers/counts over X and says so", async () => {
    const r = synthetic();
    const counts = r.X as Csr;
    r.X = fromDense(Array.from(toDense(counts), (v) => Math.log1p(v)), 5, 4);
    r.layers.set("counts", counts);
    const p = join(tmp, "withcounts.h5ad");
    await writeH5ad(p, r);
    const m = await readInput(p);
    sameCsr(m.X, counts);
    expect(m.note).toContain("layers/counts");
  });

  it("anndata 0.8 reads our file: shapes, values, categoricals, obsm, obsp, uns, record arrays", async () => {
    const p = join(tmp, "for_anndata.h5ad");
    await writeH5ad(p, synthetic());
    const out = runPython(
      `
import sys, warnings
import numpy as np, anndata
warnings.simplefilter("error")
a = anndata.read_h5ad(sys.argv[1])
assert a.shape == (5, 4), a.shape
X = a.X.toarray()
assert a.X.format == "csr" and a.X.dtype == np.float32
assert np.array_equal(X, np.array([[1,0,2,0],[0,3,0,0],[4,0,0,5],[0,0,6,0],[7,8,0,1]], dtype=np.float32)), X
assert np.array_equal(a.layers["scaled"].toarray(), X / 2)
assert list(a.obs_names) == ["c0","c1","c2","c3","c4"]
assert list(a.var_names) == ["GeneA","GeneB","MT-1","GeneD"]
assert str(a.obs["leiden"].dtype) == "category", a.obs.dtypes
assert list(a.obs["leiden"].cat.categories) == ["0","1","2"]
assert list(a.obs["leiden"]) == ["0","1","1","0","2"]
assert list(a.obs["passed"]) == [1,0,1,1,0] and a.obs["passed"].dtype == np.uint8
assert list(a.obs["sample"]) == ["a","a","b","b","ü"]
assert a.obs["n_counts"].dtype == np.float32 and list(a.obs["n_counts"]) == [3,3,9,6,16]
assert a.obs["n_genes"].dtype == np.int32
assert list(a.var["gene_ids"]) == ["G1","G2","G3","G4"]
assert np.allclose(a.var["means"], [0.25,1.5,3.125,0])
assert a.obsm["X_pca"].shape == (5,2) and a.obsm["X_pca"].dtype == np.float32
assert a.obsm["X_pca"][4,1] == np.float32(-9.25) and a.obsm["X_pca"][0,0] == np.float32(0.5)
assert a.varm["PCs"].shape == (4,2) and a.varm["PCs"][3,1] == 8
C = a.obsp["connectivities"]
assert C.format == "csr" and C.shape == (5,5) and C[0,1] == 0.5 and C[2,3] == 1 and C.nnz == 4
u = a.uns
assert u["neighbors"]["params"]["n_neighbors"] == 15 and u["neighbors"]["params"]["method"] == "umap"
assert u["neighbors"]["connectivities_key"] == "connectivities"
assert np.allclose(u["pca"]["variance_ratio"], [0.75,0.25]) and u["pca"]["variance"].dtype == np.float32
assert list(u["leiden_colors"]) == ["#1f77b4","#ff7f0e","#279e68"]
assert u["engine"] == "cellgpu ✓" and u["resolution"] == 0.5
rgg = u["rank_genes_groups"]
assert rgg["params"]["groupby"] == "leiden"
assert rgg["names"].dtype.names == ("0","1","2"), rgg["names"].dtype
assert list(rgg["names"]["1"]) == ["MT-1","GeneD"] and rgg["names"][0]["2"] == "GeneD"
assert list(rgg["scores"]["1"]) == [3,-1] and rgg["scores"].dtype["0"] == np.float32
assert rgg["pvals"]["0"][0] == 1e-5 and rgg["pvals"].dtype["2"] == np.float64
import pandas as pd
df = pd.DataFrame(rgg["names"])
assert df.shape == (2, 3)
print("ANNDATA_OK")
`,
      p,
    );
    expect(out).toContain("ANNDATA_OK");
  });

  it("reads files written by anndata 0.8 (categorical 0.2.0, h5py bools, csc and dense X)", async () => {
    const base = join(tmp, "from_anndata");
    runPython(
      `
import sys, numpy as np, pandas as pd, scipy.sparse as sp, anndata
X = np.array([[1,0,2],[0,0,3],[4,5,0],[0,6,0]], dtype=np.float32)
obs = pd.DataFrame({"cl": pd.Categorical(["b","a","b","c"], categories=["a","b","c"]),
                    "ok": np.array([True,False,True,True]),
                    "n": np.array([3,3,9,6], dtype=np.int64),
                    "s": ["x","y","z","w"]}, index=["c0","c1","c2","c3"])
var = pd.DataFrame({"gene_ids": ["E1","E2","E3"]}, index=["A","B","A2"])
anndata.AnnData(sp.csc_matrix(X), obs=obs, var=var).write_h5ad(sys.argv[1] + "_csc.h5ad")
anndata.AnnData(X, obs=obs, var=var).write_h5ad(sys.argv[1] + "_dense.h5ad")
norm = anndata.AnnData(sp.csr_matrix(np.log1p(X)), obs=obs, var=var, layers={"counts": sp.csr_matrix(X)})
norm.write_h5ad(sys.argv[1] + "_norm.h5ad", compression="gzip")
`,
      base,
    );
    const expected = fromDense([1, 0, 2, 0, 0, 3, 4, 5, 0, 0, 6, 0], 4, 3);
    for (const kind of ["csc", "dense", "norm"]) {
      const m = await readH5ad(`${base}_${kind}.h5ad`);
      sameCsr(m.X, expected);
      expect(m.obs.index).toEqual(["c0", "c1", "c2", "c3"]);
      expect(m.obs.columns.get("cl")).toEqual({ kind: "category", codes: new Int32Array([1, 0, 1, 2]), categories: ["a", "b", "c"] });
      expect(m.obs.columns.get("ok")).toEqual({ kind: "bool", values: new Uint8Array([1, 0, 1, 1]) });
      expect(m.obs.columns.get("n")).toEqual({ kind: "number", values: new Float64Array([3, 3, 9, 6]) });
      expect(m.obs.columns.get("s")).toEqual({ kind: "string", values: ["x", "y", "z", "w"] });
      expect(m.var.index).toEqual(["A", "B", "A2"]);
      expect(m.var.columns.get("gene_ids")).toEqual({ kind: "string", values: ["E1", "E2", "E3"] });
      expect(m.note === undefined).toBe(kind !== "norm");
    }
  });

  it("a failed write leaves neither the target nor a temp file", async () => {
    const dir = mkdtempSync(join(tmp, "atomic-"));
    const r = synthetic();
    r.uns = { "bad/key": 1 };
    await expect(writeH5ad(join(dir, "out.h5ad"), r)).rejects.toThrow("bad/key");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("large arrays are written and read in pieces", async () => {
    await h5wasm.ready;
    const p = join(tmp, "pieces.h5");
    const v = Float32Array.from({ length: 1003 }, (_, i) => i * 0.5);
    const f = new h5wasm.File(p, "w");
    writeArray(f, "v", v, [1003], 100);
    writeArray(f, "m", v.subarray(0, 1000), [250, 4], 90);
    f.close();
    const g = new h5wasm.File(p, "r");
    const ds = g.get("v") as InstanceType<typeof h5wasm.Dataset>;
    expect(ds.metadata.chunks).not.toBeNull();
    const seen: number[] = [];
    expect(readNumbers(p, ds, Float64Array, (piece, off) => seen.push(off, piece.length), 128)).toEqual(Float64Array.from(v));
    expect(seen.length).toBeGreaterThan(2);
    expect(readNumbers(p, g.get("m") as InstanceType<typeof h5wasm.Dataset>, Float32Array, undefined, 64)).toEqual(v.subarray(0, 1000));
    g.close();
  });
});

describe("Arrow", () => {
  it("writeCellsArrow round-trips through apache-arrow, categorical as dictionary", () => {
    const p = join(tmp, "cells.arrow");
    writeCellsArrow(p, {
      barcodes: ["c0", "c1", "c2"],
      columns: [
        { name: "UMAP_1", values: new Float32Array([0.5, 1.5, -2]) },
        { name: "total", values: new Float64Array([10, 20, 30]) },
        { name: "n_genes", values: new Int32Array([1, 2, 3]) },
        { name: "leiden", values: ["1", "0", "1"], categorical: true },
        { name: "note", values: ["x", "y", "z"] },
      ],
    });
    const bytes = readFileSync(p);
    expect(bytes.subarray(0, 6).toString("latin1")).toBe("ARROW1");
    const t = tableFromIPC(bytes);
    expect(t.schema.fields.map((f) => f.name)).toEqual(["barcode", "UMAP_1", "total", "n_genes", "leiden", "note"]);
    expect(t.getChild("barcode")!.toArray()).toEqual(["c0", "c1", "c2"]);
    expect(Array.from(t.getChild("UMAP_1")!.toArray())).toEqual([0.5, 1.5, -2]);
    expect(t.getChild("total")!.toArray()).toBeInstanceOf(Float64Array);
    expect(Array.from(t.getChild("n_genes")!.toArray())).toEqual([1, 2, 3]);
    expect(t.schema.fields[4].type.toString()).toContain("Dictionary");
    expect([...t.getChild("leiden")!]).toEqual(["1", "0", "1"]);
    expect([...t.getChild("note")!]).toEqual(["x", "y", "z"]);
    expect(readdirSync(tmp).filter((f) => f.includes(".tmp"))).toEqual([]);
  });
});
