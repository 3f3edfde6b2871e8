/**
 * seurat_v3 highly variable genes on the WebGPU device vs the CPU twin: the clipped sums of
 * kernels/moments.wgsl (block_clipped_sums / block_clipped_sq_dev) against a direct float64
 * computation, and highlyVariableGenesGpu against highlyVariableGenesCpu (same HVG set,
 * normalized variances within the reduction tolerance) on fresh random counts — empty rows,
 * never-expressed genes, many row chunks (forced small binding limit), NaN-poisoned buffers —
 * and on pbmc3k's QC-passing cells.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Csr } from "../../src/core/csr.js";
import type { Gpu } from "../../src/gpu/device.js";
import { csrChunks } from "../../src/gpu/chunking.js";
import { clippedSumsGpu, highlyVariableGenesCpu, highlyVariableGenesGpu, type HvgResult } from "../../src/ops/hvg.js";
import { referenceQcInput } from "../helpers/referenceInput.js";
import { bytesEqual, maxRelErr, randomCsr, rng, testGpu } from "./util.js";

const REDUCTION = 1e-4;
const SMALL_LIMIT = 16 * 1024;

let gpu: Gpu;
let small: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ poisonBuffers: true });
  small = await testGpu({ poisonBuffers: true, forceLimits: { maxStorageBufferBindingSize: SMALL_LIMIT } });
});
afterAll(() => {
  gpu?.destroy();
  small?.destroy();
});

const shapes: [string, () => Csr][] = [
  ["300 x 500, empty rows, dead genes", () => randomCsr(300, 500, 21, { emptyRows: 0.2, deadCols: 0.2 })],
  ["1200 x 1500", () => randomCsr(1200, 1500, 22, { density: 0.08 })],
  ["800 x 400, real values", () => randomCsr(800, 400, 23, { real: true, density: 0.15 })],
  ["40 x 600, few cells", () => randomCsr(40, 600, 24, { density: 0.3 })],
];

const hvgSet = (r: HvgResult) => Array.from(r.highlyVariable.keys()).filter((j) => r.highlyVariable[j]);

/** Σ min(x, clip_j) and its squares over the nonzeros, float64, in storage order. */
function directSums(X: Csr, clip?: Float64Array): { sum: Float64Array; sumSq: Float64Array; clipped: number } {
  const sum = new Float64Array(X.nCols);
  const sumSq = new Float64Array(X.nCols);
  let clipped = 0;
  for (let k = 0; k < X.indices.length; k++) {
    const j = X.indices[k];
    const v = clip ? Math.min(X.data[k], clip[j]) : X.data[k];
    if (v !== X.data[k]) clipped++;
    sum[j] += v;
    sumSq[j] += v * v;
  }
  return { sum, sumSq, clipped };
}

describe("clippedSumsGpu", () => {
  it.each(shapes)("matches a direct float64 computation: %s", async (name, make) => {
    const X = make();
    const integer = !name.includes("real");
    const r = rng(31);
    // Clips around the data's scale (some entries clipped, some not), including integers and
    // values within a float32 ulp of one, where rounding the clip to float32 could flip x ≥ clip.
    const clip = Float64Array.from({ length: X.nCols }, () => {
      const k = 1 + Math.floor(12 * r());
      return [0.5 + 15 * r(), k, k - 1e-9, k + 1e-9][Math.floor(4 * r())];
    });
    const plain = directSums(X);
    const cut = directSums(X, clip);
    expect(cut.clipped).toBeGreaterThan(0);
    expect(cut.clipped).toBeLessThan(X.indices.length);
    for (const g of [gpu, small]) {
      const a = await clippedSumsGpu(g, X);
      const c = await clippedSumsGpu(g, X, clip);
      if (integer) {
        // Integer counts sum exactly on the device (totals here < 2^24): the float64 sums' bits,
        // and with clipping only float64 rounding of the clipped entries' count·clip apart.
        expect(bytesEqual(a.sum, plain.sum)).toBe(true);
        expect(bytesEqual(a.sumSq, plain.sumSq)).toBe(true);
        expect(maxRelErr(c.sum, cut.sum)).toBeLessThanOrEqual(1e-13);
        expect(maxRelErr(c.sumSq, cut.sumSq)).toBeLessThanOrEqual(1e-13);
      }
      for (const [got, want] of [[a.sum, plain.sum], [a.sumSq, plain.sumSq], [c.sum, cut.sum], [c.sumSq, cut.sumSq]]) {
        expect(maxRelErr(got, want)).toBeLessThanOrEqual(REDUCTION);
      }
    }
    expect(csrChunks(small, X).length).toBeGreaterThan(1);
  });
});

describe("highlyVariableGenesGpu, seurat_v3", () => {
  it.each(shapes)("runs on the device and matches highlyVariableGenesCpu: %s", async (name, make) => {
    const X = make();
    const integer = !name.includes("real");
    const opts = { flavor: "seurat_v3" as const, nTopGenes: Math.floor(X.nCols / 5) };
    const cpu = highlyVariableGenesCpu({ logNorm: X, counts: X }, opts);
    for (const g of [gpu, small]) {
      const { result, onGpu } = await highlyVariableGenesGpu(g, { logNorm: X, counts: X }, opts);
      expect(onGpu).toBe(true);
      expect(hvgSet(result)).toEqual(hvgSet(cpu));
      expect(maxRelErr(result.means, cpu.means)).toBeLessThanOrEqual(REDUCTION);
      expect(maxRelErr(result.variances!, cpu.variances!)).toBeLessThanOrEqual(REDUCTION);
      expect(maxRelErr(result.variancesNorm!, cpu.variancesNorm!)).toBeLessThanOrEqual(REDUCTION);
      expect(Array.from(result.dispersions).every(Number.isNaN)).toBe(true);
      if (integer) {
        // Exact sums of integer counts: the CPU's moments to the bit, hence its loess, clips and
        // ranks, ties included (broken by gene order on both).
        expect(bytesEqual(result.means, cpu.means)).toBe(true);
        expect(bytesEqual(result.variances!, cpu.variances!)).toBe(true);
        expect(bytesEqual(result.highlyVariableRank!, cpu.highlyVariableRank!)).toBe(true);
      }
    }
  });

  it("gives identical bytes run to run", async () => {
    const X = randomCsr(600, 700, 25, { emptyRows: 0.1 });
    const opts = { flavor: "seurat_v3" as const, nTopGenes: 100 };
    const a = (await highlyVariableGenesGpu(gpu, { logNorm: X, counts: X }, opts)).result;
    const b = (await highlyVariableGenesGpu(gpu, { logNorm: X, counts: X }, opts)).result;
    for (const k of ["highlyVariable", "means", "variances", "variancesNorm", "highlyVariableRank"] as const) {
      expect(bytesEqual(a[k]!, b[k]!)).toBe(true);
    }
  });

  it("handles a matrix without counts (every gene constant) as the CPU does", async () => {
    const X = randomCsr(7, 30, 27, { emptyRows: 1 });
    const opts = { flavor: "seurat_v3" as const, nTopGenes: 5 };
    const { result, onGpu } = await highlyVariableGenesGpu(small, { logNorm: X, counts: X }, opts);
    expect(onGpu).toBe(true);
    expect(result).toEqual(highlyVariableGenesCpu({ logNorm: X, counts: X }, opts));
  });

  it("leaves a single cell (no variance to reduce) to the CPU, with the CPU's answer", async () => {
    const X = randomCsr(1, 50, 26, { emptyRows: 0, density: 0.5 });
    const opts = { flavor: "seurat_v3" as const, nTopGenes: 10 };
    const { result, onGpu } = await highlyVariableGenesGpu(gpu, { logNorm: X, counts: X }, opts);
    expect(onGpu).toBe(false);
    expect(result).toEqual(highlyVariableGenesCpu({ logNorm: X, counts: X }, opts));
  });

  it("pbmc3k (QC-passing cells), 2000 genes: the CPU's HVG set and ranks, variances_norm within 1e-4", async () => {
    const { counts, logNorm } = referenceQcInput("pbmc3k");
    const opts = { flavor: "seurat_v3" as const, nTopGenes: 2000 };
    let t = performance.now();
    const cpu = highlyVariableGenesCpu({ logNorm, counts }, opts);
    const tCpu = performance.now() - t;
    t = performance.now();
    const { result, onGpu } = await highlyVariableGenesGpu(gpu, { logNorm, counts }, opts);
    const tGpu = performance.now() - t;
    const again = (await highlyVariableGenesGpu(gpu, { logNorm, counts }, opts)).result;
    expect(onGpu).toBe(true);
    const set = hvgSet(result);
    expect(set.length).toBe(2000);
    expect(set).toEqual(hvgSet(cpu));
    const errMean = maxRelErr(result.means, cpu.means);
    const errVar = maxRelErr(result.variances!, cpu.variances!);
    const errNorm = maxRelErr(result.variancesNorm!, cpu.variancesNorm!);
    const sameRank = Array.from(result.highlyVariableRank!).every((r, j) => Object.is(r, cpu.highlyVariableRank![j]));
    const sameBits = result.variancesNorm!.filter((v, j) => Object.is(v, cpu.variancesNorm![j])).length;
    console.log(
      `pbmc3k seurat_v3 ${counts.nRows}x${counts.nCols}: cpu ${tCpu.toFixed(0)} ms, gpu ${tGpu.toFixed(0)} ms; ` +
        `max rel err mean ${errMean.toExponential(2)} var ${errVar.toExponential(2)} variances_norm ${errNorm.toExponential(2)}; ` +
        `ranks identical ${sameRank}, ${sameBits}/${counts.nCols} variances_norm bit-identical`,
    );
    expect(errNorm).toBeLessThanOrEqual(REDUCTION);
    // pbmc3k's cut-off (rank 2000) is an exact tie among genes with equal Σx, Σx²; only exact
    // moments keep the CPU's tie-breaking, so they are checked to the bit.
    expect(bytesEqual(result.means, cpu.means)).toBe(true);
    expect(bytesEqual(result.variances!, cpu.variances!)).toBe(true);
    expect(sameRank).toBe(true);
    for (const k of ["highlyVariable", "means", "variances", "variancesNorm", "highlyVariableRank"] as const) {
      expect(bytesEqual(result[k]!, again[k]!)).toBe(true);
    }
  }, 50_000);
});
