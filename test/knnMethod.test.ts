/**
 * The pipeline's kNN choice: exact by default at this size, NN-descent when asked (and, with
 * "auto" on the CPU, above KNN_EXACT_MAX_CELLS), its recall estimated from a sample of cells and
 * reported; IVF (bit-identical twins) where a device is in hand.
 */
import { describe, expect, it } from "vitest";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { knnRecall } from "../src/metrics/index.js";
import { analyze, chooseKnnMethod, KNN_EXACT_MAX_CELLS } from "../src/pipeline/analyze.js";
import { knnExactCpu } from "../src/ops/knn.js";
import { presetDefaults } from "../src/pipeline/params.js";
import { datasetDir } from "./helpers/reference.js";

describe("knnMethod", () => {
  it("auto is exact on pbmc3k; approx runs NN-descent and reports a recall close to the true one", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc3k"));
    const p = { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 };
    const exact = await analyze(input, p);
    const approx = await analyze(input, { ...p, knnMethod: "approx" });
    expect(exact.knnMethod).toBe("exact");
    expect(exact.knnRecallEstimate).toBe(1);
    expect(approx.knnMethod).toBe("nn-descent");
    const trueRecall = knnRecall(approx.knn.indices, exact.knn.indices, exact.nCells, 15);
    console.log(`pbmc3k NN-descent: recall ${trueRecall.toFixed(4)}, estimated ${approx.knnRecallEstimate.toFixed(4)}`);
    expect(trueRecall).toBeGreaterThanOrEqual(0.95);
    expect(Math.abs(approx.knnRecallEstimate - trueRecall)).toBeLessThan(0.02);
    const params = (approx.result.uns.neighbors as { params: { knn_method: string } }).params;
    expect(params.knn_method).toBe("nn-descent");
  });
});

describe("chooseKnnMethod", () => {
  it("is exact up to KNN_EXACT_MAX_CELLS, then IVF with a device and NN-descent without", () => {
    expect(chooseKnnMethod("auto", KNN_EXACT_MAX_CELLS, 50, true)).toBe("exact");
    expect(chooseKnnMethod("auto", KNN_EXACT_MAX_CELLS + 1, 50, true)).toBe("ivf");
    expect(chooseKnnMethod("auto", KNN_EXACT_MAX_CELLS + 1, 50, false)).toBe("nn-descent");
    expect(chooseKnnMethod("approx", 100, 50, true)).toBe("ivf");
    expect(chooseKnnMethod("approx", 100, 300, true)).toBe("nn-descent");
    expect(chooseKnnMethod("exact", 10 ** 6, 50, true)).toBe("exact");
    expect(chooseKnnMethod("ivf", 100, 50, false)).toBe("ivf");
  });

  it("ivf on the CPU backend runs IVF and reports its recall", async () => {
    const input = readTenxMtxDir(datasetDir("pbmc3k"));
    const p = { ...presetDefaults("scanpy"), maxGenes: 2500, maxPctMt: 5 };
    const ivf = await analyze(input, { ...p, knnMethod: "ivf" });
    const exact = knnExactCpu(ivf.pcaScores, ivf.nCells, ivf.pcaScores.length / ivf.nCells, 15);
    const trueRecall = knnRecall(ivf.knn.indices, exact.indices, ivf.nCells, 15);
    console.log(`pbmc3k IVF: recall ${trueRecall.toFixed(4)}, estimated ${ivf.knnRecallEstimate.toFixed(4)}`);
    expect(ivf.knnMethod).toBe("ivf");
    expect(trueRecall).toBeGreaterThanOrEqual(0.95);
    expect(Math.abs(ivf.knnRecallEstimate - trueRecall)).toBeLessThan(0.02);
    expect((ivf.result.uns.neighbors as { params: { knn_method: string } }).params.knn_method).toBe("ivf");
  });
});
