/**
 * A kernel that fails (GpuError: validation, or a buffer the device cannot hold) sends that step
 * to its CPU twin with one warning naming the step; the run finishes with the CPU's result.
 * The device here is a stand-in whose every call fails, so no adapter is needed.
 */
import { describe, expect, it } from "vitest";
import { GpuError, type Gpu } from "../src/gpu/device.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { analyze } from "../src/pipeline/analyze.js";
import { presetDefaults } from "../src/pipeline/params.js";
import { datasetDir } from "./helpers/reference.js";

function failingGpu(): Gpu {
  const known: Record<string, unknown> = {
    lost: false,
    lostMessage: "",
    limits: { maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 30 },
    info: { vendor: "test", architecture: "", description: "always fails", isFallbackAdapter: false },
  };
  return new Proxy(known, {
    get: (t, k) =>
      typeof k === "string" && k in t
        ? t[k]
        : () => {
            throw new GpuError("shader validation failed (test device)");
          },
  }) as unknown as Gpu;
}

describe("a failing kernel", () => {
  it("runs that step on the CPU with one warning each and gives the CPU result", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc3k"));
    const p = { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 };
    const cpu = await analyze(input, p);
    const warnings: string[] = [];
    const out = await analyze(input, p, { gpu: failingGpu(), warn: (m) => warnings.push(m) });
    const gpuSteps = ["qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "leiden", "umap", "rank_genes_groups"];
    expect(warnings).toHaveLength(gpuSteps.length);
    gpuSteps.forEach((s, i) => expect(warnings[i]).toBe(`cellgpu: ${s} on WebGPU failed (shader validation failed (test device)); running it on the CPU`));
    expect(out.steps.every((s) => s.backend === "cpu")).toBe(true);
    expect(Buffer.from(out.pcaScores.buffer).equals(Buffer.from(cpu.pcaScores.buffer))).toBe(true);
    expect(Buffer.from(out.clusters.buffer).equals(Buffer.from(cpu.clusters.buffer))).toBe(true);
    expect(Buffer.from(out.umap.buffer).equals(Buffer.from(cpu.umap.buffer))).toBe(true);
  }, 300_000);
});
