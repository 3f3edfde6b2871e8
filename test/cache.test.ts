/**
 * Step memoization: changing only the resolution re-runs clustering and markers, takes every
 * upstream step (and UMAP, which does not depend on the resolution) from the cache, and gives
 * what a cold run gives. Also: progress events and cancellation between steps.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { analyze, type ProgressEvent, type StepRecord } from "../src/pipeline/analyze.js";
import { MemoryStepCache } from "../src/pipeline/cache.js";
import { presetDefaults } from "../src/pipeline/params.js";
import { datasetDir, repoRoot } from "./helpers/reference.js";

const params = { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 };

describe("step cache", () => {
  it("re-runs only the steps downstream of a changed resolution, with the cold run's result", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc3k"));
    const cache = new MemoryStepCache();
    const first: StepRecord[] = [];
    await analyze(input, params, { cache, onStep: (s) => first.push(s) });
    expect(first.every((s) => !s.cached)).toBe(true);

    const second: StepRecord[] = [];
    const warm = await analyze(input, { ...params, resolution: 0.5 }, { cache, onStep: (s) => second.push(s) });
    const cached = Object.fromEntries(second.map((s) => [s.step, Boolean(s.cached)]));
    expect(cached).toEqual({
      qc: true,
      normalize: true,
      hvg: true,
      pca: true,
      neighbors_knn: true,
      neighbors_graph: true,
      leiden: false,
      umap: true,
      rank_genes_groups: false,
    });

    const cold = await analyze(input, { ...params, resolution: 0.5 });
    expect(Array.from(warm.clusters)).toEqual(Array.from(cold.clusters));
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect(bytes(warm.pcaScores).equals(bytes(cold.pcaScores))).toBe(true);
    expect(bytes(warm.umap).equals(bytes(cold.umap))).toBe(true);
    const names = (o: typeof warm) => (o.result.uns.rank_genes_groups as unknown as { names: { recarray: { columns: string[][] } } }).names.recarray.columns;
    expect(names(warm)).toEqual(names(cold));
  });

  it("reports progress for every step and stops between steps when aborted", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc_small_seurat"));
    const p = { ...presetDefaults("scanpy"), minGenes: 0, minCells: 0, nComps: 20, nPcs: 20, nTopGenes: 100 };
    const events: ProgressEvent[] = [];
    await analyze(input, p, { onProgress: (e) => events.push(e) });
    const ends = events.filter((e) => e.phase === "end");
    expect(ends.map((e) => e.step)).toEqual(["qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "leiden", "umap", "rank_genes_groups"]);
    expect(ends.map((e) => e.fraction)).toEqual([...ends.map((e) => e.fraction)].sort((a, b) => a - b));
    expect(ends.every((e) => e.etaMs !== undefined && e.etaMs >= 0)).toBe(true);

    const ac = new AbortController();
    const ran: string[] = [];
    const run = analyze(input, p, {
      signal: ac.signal,
      onStep: (s) => {
        ran.push(s.step);
        if (s.step === "hvg") ac.abort(new Error("stop here"));
      },
    });
    await expect(run).rejects.toThrow("stop here");
    expect(ran).toEqual(["qc", "normalize", "hvg"]);
  });

  it("works across CLI invocations with --cache and marks cached steps in summary.json", () => {
    const dir = mkdtempSync(join(tmpdir(), "cellgpu-cache-"));
    const cli = join(repoRoot, "dist/cli.js");
    const args = ["analyze", "datasets/pbmc3k", "--max-genes", "2500", "--max-pct-mt", "5", "--backend", "cpu", "--cache", join(dir, "cache")];
    const a = spawnSync(process.execPath, [cli, ...args, "--out", join(dir, "a")], { cwd: repoRoot, encoding: "utf8" });
    expect(a.status, a.stderr).toBe(0);
    const b = spawnSync(process.execPath, [cli, ...args, "--resolution", "0.5", "--out", join(dir, "b")], { cwd: repoRoot, encoding: "utf8" });
    expect(b.status, b.stderr).toBe(0);
    const sa = JSON.parse(readFileSync(join(dir, "a", "summary.json"), "utf8"));
    const sb = JSON.parse(readFileSync(join(dir, "b", "summary.json"), "utf8"));
    expect(sa.steps.some((s: { cached?: boolean }) => s.cached)).toBe(false);
    const cachedB = sb.steps.filter((s: { cached?: boolean }) => s.cached).map((s: { step: string }) => s.step);
    expect(cachedB).toEqual(["qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "umap"]);
    expect(readdirSync(join(dir, "cache")).length).toBeGreaterThanOrEqual(9);
  });
});
