/**
 * A tiny host memory budget (params.maxMemory) sends the count steps through the blocks route
 * (compact counts, rows and genes widened a block at a time); every output must equal the
 * whole-matrix route's, byte for byte.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { compactCounts, countsToCsr, isCountMatrix } from "../src/core/counts.js";
import type { Csr } from "../src/core/csr.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { analyze, type AnalyzeOutput } from "../src/pipeline/analyze.js";
import { presetDefaults, type AnalyzeParams } from "../src/pipeline/params.js";
import type { RowBlocks, SparseOut } from "../src/pipeline/result.js";
import { datasetDir } from "./helpers/reference.js";

/** Stacks row blocks (or widens compact counts) into one Csr. */
function materialize(m: SparseOut): Csr {
  if (isCountMatrix(m)) return countsToCsr(m);
  if ((m as RowBlocks).kind !== "rowBlocks") return m as Csr;
  const rb = m as RowBlocks;
  const indptr = new Float64Array(rb.nRows + 1);
  const indices = new Uint32Array(rb.nnz);
  const data = new Float32Array(rb.nnz);
  let r = 0;
  let o = 0;
  for (const b of rb.blocks()) {
    for (let i = 1; i <= b.nRows; i++) indptr[r + i] = o + b.indptr[i];
    indices.set(b.indices, o);
    data.set(b.data, o);
    r += b.nRows;
    o += b.indptr[b.nRows];
  }
  expect(r).toBe(rb.nRows);
  expect(o).toBe(rb.nnz);
  return { nRows: rb.nRows, nCols: rb.nCols, indptr, indices, data };
}

const bytes = (a: ArrayLike<number> & { buffer?: ArrayBufferLike }) => Buffer.from(new Uint8Array((a as Float32Array).buffer, (a as Float32Array).byteOffset, (a as Float32Array).byteLength));

function expectSameSparse(a: SparseOut, b: SparseOut) {
  const x = materialize(a);
  const y = materialize(b);
  expect([x.nRows, x.nCols]).toEqual([y.nRows, y.nCols]);
  expect(bytes(x.indptr).equals(bytes(y.indptr))).toBe(true);
  expect(Buffer.from(Uint32Array.from(x.indices).buffer).equals(Buffer.from(Uint32Array.from(y.indices).buffer))).toBe(true);
  expect(bytes(x.data).equals(bytes(y.data))).toBe(true);
}

const presets: { name: string; params: Partial<AnalyzeParams> }[] = [
  { name: "scanpy", params: { maxGenes: 2500, maxPctMt: 5 } },
  // Seurat filters genes before cells and ranks HVGs by seurat_v3 on the counts.
  { name: "seurat", params: { maxGenes: 2500, maxPctMt: 5, nStarts: 1 } },
];

for (const c of presets) {
  describe(`${c.name} preset on pbmc3k: 8 MiB budget (blocks) vs no budget (whole)`, () => {
    let whole: AnalyzeOutput;
    let blocks: AnalyzeOutput;
    beforeAll(async () => {
      const cm = readTenxMtxDir(datasetDir("pbmc3k"));
      const p = { ...presetDefaults(c.name), ...c.params, backend: "cpu" as const };
      whole = await analyze(cm, p);
      // Compact input, as the CLI reads it; the blocks route filters it in place.
      const compact = { X: compactCounts(cm.X), obs: cm.obs, var: cm.var, source: cm.source };
      blocks = await analyze(compact, { ...p, maxMemory: 8 * 2 ** 20 });
    }, 300_000);

    it("chose the routes asked for", () => {
      expect(whole.memoryPlan.route).toBe("whole");
      expect(blocks.memoryPlan.route).toBe("blocks");
      // 8 MiB leaves blocks of ~26k nonzeros: many row and gene blocks on pbmc3k's 2.3M.
      expect(blocks.memoryPlan.blockNnz).toBeLessThan(whole.nnz / 50);
      expect(blocks.result.layers.get("counts")).toSatisfy(isCountMatrix);
    });

    it("keeps the same cells, genes and QC metrics", () => {
      expect(blocks.result.obs.index).toEqual(whole.result.obs.index);
      expect(blocks.result.var.index).toEqual(whole.result.var.index);
      for (const t of ["obs", "var"] as const) {
        for (const [name, col] of whole.result[t].columns) expect(blocks.result[t].columns.get(name), `${t}.${name}`).toEqual(col);
      }
    });

    it("gives the same X, counts layer, HVGs, PCA, kNN, clusters, UMAP and markers", () => {
      expectSameSparse(blocks.result.X, whole.result.X);
      expectSameSparse(blocks.result.layers.get("counts")!, whole.result.layers.get("counts")!);
      expect(bytes(blocks.hvgMask).equals(bytes(whole.hvgMask))).toBe(true);
      expect(blocks.nnzHvg).toBe(whole.nnzHvg);
      expect(bytes(blocks.pcaScores).equals(bytes(whole.pcaScores))).toBe(true);
      expect(bytes(blocks.knn.indices).equals(bytes(whole.knn.indices))).toBe(true);
      expect(bytes(blocks.clusters).equals(bytes(whole.clusters))).toBe(true);
      expect(bytes(blocks.umap).equals(bytes(whole.umap))).toBe(true);
      expect(blocks.result.uns.rank_genes_groups).toEqual(whole.result.uns.rank_genes_groups);
    });
  });
}

describe("cancellation in the blocks route", () => {
  it("an abort during the HVG step stops it within one block", async () => {
    const cm = readTenxMtxDir(datasetDir("pbmc3k"));
    const compact = { X: compactCounts(cm.X), obs: cm.obs, var: cm.var, source: cm.source };
    const ac = new AbortController();
    const events: string[] = [];
    const run = analyze(compact, { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5, maxMemory: 8 * 2 ** 20 }, {
      signal: ac.signal,
      onProgress: (e) => {
        events.push(`${e.step}:${e.phase}`);
        // Aborted from outside the step, as Ctrl-C would: it can only land at a yield between blocks.
        if (e.step === "hvg" && e.phase === "start") setImmediate(() => ac.abort(new Error("stopped by the user")));
      },
    });
    await expect(run).rejects.toThrow("stopped by the user");
    expect(events).toContain("hvg:start");
    expect(events).not.toContain("hvg:end");
  }, 120_000);
});
