/**
 * The whole pipeline with the WebGPU backend on the real adapter: every step runs on the device,
 * and the result matches the CPU backend (identical QC and HVG sets, PC1-10 subspace >= 0.9999,
 * variance ratios within 1e-4, clusters ARI >= 0.65 as for Leiden's own seeds on pbmc3k) and the
 * scanpy-like reference; the same run twice gives byte-identical X_pca, clusters and UMAP; a
 * device lost mid-run finishes on the CPU.
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readTenxMtxDir } from "../../src/io/mtx.js";
import { adjustedRandIndex, jaccard, knnRecall, modularity, subspaceSimilarity, trustworthiness } from "../../src/metrics/index.js";
import { analyze, type AnalyzeOutput, type StepRecord } from "../../src/pipeline/analyze.js";
import { presetDefaults } from "../../src/pipeline/params.js";
import { datasetDir, readMatrix, readTsv, referenceDir } from "../helpers/reference.js";
import { referenceGraph, referencePcs } from "../helpers/pipelineRef.js";
import { testGpu } from "./util.js";

const params = { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 };
const gpuSteps = ["qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "leiden", "umap", "rank_genes_groups"];

describe("pbmc3k with --backend webgpu", () => {
  const input = readTenxMtxDir(datasetDir("pbmc3k"));
  let cpu: AnalyzeOutput;
  let gpu1: AnalyzeOutput;
  let gpu2: AnalyzeOutput;
  let chunked: AnalyzeOutput;

  beforeAll(async () => {
    const gpu = await testGpu();
    try {
      gpu1 = await analyze(input, { ...params, backend: "webgpu" }, { gpu });
      gpu2 = await analyze(input, { ...params, backend: "webgpu" }, { gpu });
    } finally {
      gpu.destroy();
    }
    // pbmc3k's counts alone are 2.29M nonzeros × 8 bytes: several chunks when bindings are forced under 4 MiB.
    const small = await testGpu({ forceLimits: { maxStorageBufferBindingSize: 4 << 20 } });
    try {
      chunked = await analyze(input, { ...params, backend: "webgpu" }, { gpu: small });
    } finally {
      small.destroy();
    }
    cpu = await analyze(input, { ...params, backend: "cpu" });
  });

  it("runs the kernel steps on the device", () => {
    const backends = Object.fromEntries(gpu1.steps.map((s) => [s.step, s.backend]));
    for (const s of gpuSteps) expect(backends[s], s).toBe("webgpu");
  });

  it("keeps the same cells, QC metrics and HVG set as the CPU backend", () => {
    expect(gpu1.result.obs.index).toEqual(cpu.result.obs.index);
    for (const c of ["n_genes_by_counts", "total_counts"]) {
      const a = gpu1.result.obs.columns.get(c)!;
      const b = cpu.result.obs.columns.get(c)!;
      if (a.kind !== "number" || b.kind !== "number") throw new Error(c);
      expect(Array.from(a.values)).toEqual(Array.from(b.values));
    }
    expect(Array.from(gpu1.hvgMask)).toEqual(Array.from(cpu.hvgMask));
  });

  it("finds the CPU's PCA subspace (>= 0.9999) and variance ratios (within 1e-4)", () => {
    const n = cpu.nCells;
    const sim = subspaceSimilarity(gpu1.pcaScores, cpu.pcaScores, n, 10, 50, 50);
    let worst = 0;
    for (let j = 0; j < 50; j++) worst = Math.max(worst, Math.abs(gpu1.varianceRatio[j] - cpu.varianceRatio[j]) / cpu.varianceRatio[j]);
    console.log(`webgpu vs cpu: PC1-10 subspace ${sim.toFixed(8)}, worst variance-ratio rel. diff ${worst.toExponential(2)}`);
    expect(sim).toBeGreaterThanOrEqual(0.9999);
    expect(worst).toBeLessThan(1e-4);
  });

  it("meets the reference bars (PCA subspace, kNN recall, HVGs, clusters, UMAP)", () => {
    const ref = referenceDir("pbmc3k");
    const refPca = referencePcs("pbmc3k");
    const sim = subspaceSimilarity(gpu1.pcaScores, refPca.data, gpu1.nCells, 10, 50, refPca.k);
    const refKnn = readMatrix(join(ref, "knn_indices.tsv.gz"), "nn_");
    const recall = knnRecall(gpu1.knn.indices, refKnn.data, gpu1.nCells, 15, refKnn.k);
    const hvg = readTsv(join(ref, "hvg.tsv")).col("feature");
    const mine = gpu1.result.var.index.filter((_, j) => gpu1.hvgMask[j]);
    const ari = adjustedRandIndex(gpu1.clusters, cpu.clusters);
    const g = referenceGraph("pbmc3k");
    const refLabels = readTsv(join(ref, "clusters.tsv.gz")).num("leiden");
    const q = modularity(g, gpu1.clusters, 1) / modularity(g, refLabels, 1);
    const refUmap = readMatrix(join(ref, "umap.tsv.gz"), "UMAP_");
    const tGpu = trustworthiness(refPca.data, refPca.k, gpu1.umap, 2, gpu1.nCells, 15);
    const tRef = trustworthiness(refPca.data, refPca.k, refUmap.data, 2, gpu1.nCells, 15);
    console.log(
      `webgpu vs reference: subspace ${sim.toFixed(6)}, kNN recall ${recall.toFixed(5)}, HVG Jaccard ${jaccard(mine, hvg).toFixed(4)}, ` +
        `quality ${q.toFixed(4)} of the reference partition's, UMAP trust ${tGpu.toFixed(4)} vs ${tRef.toFixed(4)}; ARI to the CPU backend ${ari.toFixed(3)}`,
    );
    expect(sim).toBeGreaterThanOrEqual(0.999);
    expect(recall).toBeGreaterThanOrEqual(0.99);
    expect(jaccard(mine, hvg)).toBeGreaterThanOrEqual(0.99);
    expect(ari).toBeGreaterThanOrEqual(0.65);
    expect(q).toBeGreaterThanOrEqual(0.985);
    expect(tGpu).toBeGreaterThanOrEqual(tRef - 0.02);
  });

  it("gives the unchunked result when the CSR exceeds the (forced) binding limit", () => {
    expect(chunked.steps.filter((s) => s.backend === "webgpu").map((s) => s.step)).toEqual(gpuSteps);
    expect(Array.from(chunked.hvgMask)).toEqual(Array.from(gpu1.hvgMask));
    expect(subspaceSimilarity(chunked.pcaScores, gpu1.pcaScores, gpu1.nCells, 10, 50, 50)).toBeGreaterThanOrEqual(0.9999);
    expect(adjustedRandIndex(chunked.clusters, gpu1.clusters)).toBeGreaterThanOrEqual(0.65);
  });

  it("gives byte-identical X_pca, clusters and UMAP on two runs", () => {
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    expect(bytes(gpu2.pcaScores).equals(bytes(gpu1.pcaScores))).toBe(true);
    expect(Array.from(gpu2.clusters)).toEqual(Array.from(gpu1.clusters));
    expect(bytes(gpu2.umap).equals(bytes(gpu1.umap))).toBe(true);
  });
});

describe("device lost mid-run", () => {
  it("finishes on the CPU with one warning and the CPU's result", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc_small_seurat"));
    const p = { ...presetDefaults("scanpy"), minGenes: 0, minCells: 0, nComps: 20, nPcs: 20, nTopGenes: 100, backend: "webgpu" as const };
    const gpu = await testGpu();
    const warnings: string[] = [];
    const onStep = (s: StepRecord) => {
      if (s.step === "normalize") gpu.device.destroy(); // what a lost device looks like from here
    };
    const lost = await analyze(input, p, { gpu, onStep, warn: (m) => warnings.push(m) });
    gpu.destroy();
    const cpuRun = await analyze(input, { ...p, backend: "cpu" });
    const backends = Object.fromEntries(lost.steps.map((s) => [s.step, s.backend]));
    expect(backends.qc).toBe("webgpu");
    expect(backends.normalize).toBe("webgpu");
    expect(backends.hvg).toBe("cpu");
    expect(backends.pca).toBe("cpu");
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/lost.*CPU/);
    expect(Array.from(lost.hvgMask)).toEqual(Array.from(cpuRun.hvgMask));
    expect(subspaceSimilarity(lost.pcaScores, cpuRun.pcaScores, lost.nCells, 10, 20, 20)).toBeGreaterThan(0.9999);
    expect(adjustedRandIndex(lost.clusters, cpuRun.clusters)).toBe(1);
  });
});

describe("the seurat preset with --backend webgpu", () => {
  it("runs every step on the device (seurat_v3 HVG, SNN, Louvain) with the CPU's HVG set and a partition close to it", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc_small_seurat"));
    const p = { ...presetDefaults("seurat"), minGenes: 0, minCells: 0, nComps: 20, nTopGenes: 100 };
    const gpu = await testGpu();
    let run: AnalyzeOutput;
    try {
      run = await analyze(input, { ...p, backend: "webgpu" }, { gpu });
    } finally {
      gpu.destroy();
    }
    const cpuRun = await analyze(input, { ...p, backend: "cpu" });
    const backends = Object.fromEntries(run.steps.map((s) => [s.step, s.backend]));
    for (const s of ["qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "louvain", "umap", "rank_genes_groups"]) expect(backends[s], s).toBe("webgpu");
    expect(Array.from(run.hvgMask)).toEqual(Array.from(cpuRun.hvgMask));
    expect(subspaceSimilarity(run.pcaScores, cpuRun.pcaScores, run.nCells, 10, 20, 20)).toBeGreaterThan(0.9999);
    expect(adjustedRandIndex(run.clusters, cpuRun.clusters)).toBeGreaterThanOrEqual(0.65);
  });
});
