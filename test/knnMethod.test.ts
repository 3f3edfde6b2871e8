/**
 * The pipeline's kNN choice: exact by default at this size, NN-descent when asked (and, with
 * "auto" on the CPU, above KNN_EXACT_MAX_CELLS), its recall estimated from a sample of cells and
 * reported.
 */
import { describe, expect, it } from "vitest";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { knnRecall } from "../src/metrics/index.js";
import { analyze } from "../src/pipeline/analyze.js";
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
