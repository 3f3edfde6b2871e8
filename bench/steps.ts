/**
 * The preprocessing + PCA steps alone (normalize_total + log1p, HVG moments and selection, PCA
 * of the HVGs), CPU vs WebGPU, on a 10x directory and on simulated sizes up to 1M cells — the
 * issue's GPU target (1M cells × 2,000 HVGs within 2 s on an H100). No kNN / clustering / UMAP,
 * so large sizes fit in minutes. Used by bench/gpu-device.sh:
 *
 *   node dist/bench.js steps --dir datasets/pbmc3k --cells 200k,1M --out result.json
 *
 * Simulated matrices are built in memory, fast enough for 1M cells: a pool of ≤ 20,000 distinct
 * cells (8 clusters, per-gene detection rates and geometric counts) drawn with a seeded PRNG, and
 * each of the n cells a copy of a pool cell chosen by a hash of its index. Duplicated rows cost
 * the kernels the same as fresh ones; the point is the time per step at that shape.
 * The WebGPU side is warmed up first (pipelines compiled on a small slice), then timed once.
 */
import { mulberry32 } from "../src/core/random.js";
import type { Csr } from "../src/core/csr.js";
import { subsetCols, subsetRows } from "../src/core/csr.js";
import { acquireGpu, type Gpu } from "../src/gpu/device.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { subspaceSimilarity } from "../src/metrics/index.js";
import { highlyVariableGenesCpu, highlyVariableGenesGpu } from "../src/ops/hvg.js";
import { normalizeTotalLog1pCpu, normalizeTotalLog1pGpu } from "../src/ops/normalize.js";
import { pcaCpu, pcaGpu, type PcaResult } from "../src/ops/pca.js";
import { countDeviceMemory, type DeviceMemory } from "./child.js";
import { measureGpuCeiling, type GpuCeiling } from "./work.js";

export interface StepsOptions {
  dir?: string;
  sizes: number[];
  genes: number;
  hvgs: number;
  nComps: number;
  backends: ("cpu" | "webgpu")[];
  /** The CPU baseline runs only up to this many cells (its PCA grows to minutes beyond). */
  cpuMaxCells: number;
  seed: number;
  ceiling: boolean;
  log: (s: string) => void;
}

export interface StepsRow {
  name: string;
  nCells: number;
  nGenes: number;
  nnz: number;
  nnzHvg?: number;
  /** backend → step → ms (normalize, hvg, pca, total). */
  ms: Record<string, Record<string, number>>;
  /** Which backend actually ran each step (HVG selection stays on the CPU for seurat_v3). */
  ranOn: Record<string, Record<string, string>>;
  /** webgpu vs cpu: HVG sets equal, PC1–10 subspace similarity, largest variance-ratio relative difference. */
  agreement?: { hvgEqual: boolean; pc10Subspace: number; varianceRatioRelDiff: number };
  deviceMemory?: DeviceMemory;
  note?: string;
}


/** n cells × g genes of counts, rows copied from a seeded pool (see header). */
export function simulateCounts(n: number, g: number, seed: number): Csr {
  const r = mulberry32(seed);
  const nClusters = 8;
  const poolSize = Math.min(n, 20_000);
  // per gene: detection rate (mean ≈ 0.1, skewed), mean count; per cluster: ×4 on 5% of genes
  const rate = Float64Array.from({ length: g }, () => Math.min(0.9, 0.005 + 0.45 * r() ** 2.5));
  const mean = Float64Array.from({ length: g }, () => 0.3 + 6 * r() ** 3);
  const boost = Array.from({ length: nClusters }, () => Uint8Array.from({ length: g }, () => (r() < 0.05 ? 1 : 0)));
  const pPtr = new Uint32Array(poolSize + 1);
  const pIdx: number[] = [];
  const pVal: number[] = [];
  for (let c = 0; c < poolSize; c++) {
    const b = boost[c % nClusters];
    const depth = 0.5 + r();
    for (let j = 0; j < g; j++) {
      const p = Math.min(0.95, rate[j] * depth * (b[j] ? 4 : 1));
      if (r() < p) {
        pIdx.push(j);
        pVal.push(1 + Math.floor(-Math.log(1 - r()) * mean[j] * depth * (b[j] ? 3 : 1)));
      }
    }
    pPtr[c + 1] = pIdx.length;
  }
  const pick = (i: number) => {
    let h = Math.imul(i ^ seed, 0x9e3779b1) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
    return ((h ^ (h >>> 13)) >>> 0) % poolSize; // unsigned: a signed remainder could be negative
  };
  const indptr = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    const c = i < poolSize ? i : pick(i);
    indptr[i + 1] = indptr[i] + pPtr[c + 1] - pPtr[c];
  }
  const nnz = indptr[n];
  const indices = new Uint32Array(nnz);
  const data = new Float32Array(nnz);
  const poolIdx = Uint32Array.from(pIdx);
  const poolVal = Float32Array.from(pVal);
  for (let i = 0; i < n; i++) {
    const c = i < poolSize ? i : pick(i);
    indices.set(poolIdx.subarray(pPtr[c], pPtr[c + 1]), indptr[i]);
    data.set(poolVal.subarray(pPtr[c], pPtr[c + 1]), indptr[i]);
  }
  return { nRows: n, nCols: g, indptr, indices, data };
}

/** A 10x directory with scanpy's min_genes 200 / min_cells 3 filters (no mito / max-genes QC). */
function fromDir(dir: string): Csr {
  let X = readTenxMtxDir(dir).X;
  const perRow = new Uint8Array(X.nRows);
  for (let i = 0; i < X.nRows; i++) perRow[i] = X.indptr[i + 1] - X.indptr[i] >= 200 ? 1 : 0;
  X = subsetRows(X, perRow);
  const cells = new Uint32Array(X.nCols);
  for (let k = 0; k < X.indptr[X.nRows]; k++) cells[X.indices[k]]++;
  return subsetCols(X, Uint8Array.from(cells, (c) => (c >= 3 ? 1 : 0)));
}

async function timeSteps(X: Csr, o: StepsOptions, gpu?: Gpu): Promise<{ ms: Record<string, number>; ranOn: Record<string, string>; hvg: Uint8Array; pca: PcaResult; nnzHvg: number }> {
  const ms: Record<string, number> = {};
  const ranOn: Record<string, string> = {};
  const t0 = performance.now();
  let t = t0;
  const lap = (name: string, on: string) => {
    const now = performance.now();
    ms[name] = now - t;
    ranOn[name] = on;
    t = now;
  };
  const logNorm = gpu ? await normalizeTotalLog1pGpu(gpu, X, 1e4) : normalizeTotalLog1pCpu(X, 1e4);
  lap("normalize", gpu ? "webgpu" : "cpu");
  const hvgOpts = { flavor: "seurat" as const, nTopGenes: o.hvgs };
  let hvg;
  let hvgOn = "cpu";
  if (gpu) {
    const r = await highlyVariableGenesGpu(gpu, { logNorm, counts: X }, hvgOpts);
    hvg = r.result;
    hvgOn = r.onGpu ? "webgpu" : "cpu";
  } else hvg = highlyVariableGenesCpu({ logNorm, counts: X }, hvgOpts);
  lap("hvg", hvgOn);
  const Xh = subsetCols(logNorm, hvg.highlyVariable);
  const pcaOpts = { nComps: o.nComps, maxValue: 10, seed: o.seed };
  const pca = gpu ? await pcaGpu(gpu, Xh, pcaOpts) : pcaCpu(Xh, pcaOpts);
  lap("pca", gpu ? "webgpu" : "cpu");
  ms.total = performance.now() - t0;
  return { ms, ranOn, hvg: hvg.highlyVariable, pca, nnzHvg: Xh.indptr[Xh.nRows] };
}

export async function runSteps(o: StepsOptions): Promise<{ adapter?: Gpu["info"]; limits?: Gpu["limits"]; ceiling?: GpuCeiling; rows: StepsRow[] }> {
  let gpu: Gpu | undefined;
  let mem: DeviceMemory | undefined;
  let ceiling: GpuCeiling | undefined;
  if (o.backends.includes("webgpu")) {
    gpu = await acquireGpu();
    const i = gpu.info;
    o.log(`adapter: vendor ${i.vendor}, architecture ${i.architecture}, description ${i.description}, fallback ${i.isFallbackAdapter}; maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}, maxBufferSize ${gpu.limits.maxBufferSize}`);
    if (o.ceiling) {
      ceiling = await measureGpuCeiling(gpu);
      o.log(`ceiling: copy ${ceiling.copyGBps.toFixed(1)} GB/s (${ceiling.copyMethod}), f32 matmul ${ceiling.matmulGflops.toFixed(1)} GFLOP/s (${ceiling.matmulKernel}), ${(ceiling.ms / 1000).toFixed(1)} s`);
    }
    mem = countDeviceMemory(gpu);
  }
  const inputs: { name: string; make: () => Csr }[] = [];
  if (o.dir) inputs.push({ name: o.dir.split("/").filter(Boolean).pop()!, make: () => fromDir(o.dir!) });
  for (const n of o.sizes) inputs.push({ name: `sim${n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`}×${o.genes}`, make: () => simulateCounts(n, o.genes, o.seed) });

  const rows: StepsRow[] = [];
  let warmed = false;
  try {
    for (const inp of inputs) {
      const tm = performance.now();
      const X = inp.make();
      o.log(`${inp.name}: ${X.nRows} cells × ${X.nCols} genes, ${X.indptr[X.nRows]} nonzeros (${((performance.now() - tm) / 1000).toFixed(1)} s to build)`);
      const row: StepsRow = { name: inp.name, nCells: X.nRows, nGenes: X.nCols, nnz: X.indptr[X.nRows], ms: {}, ranOn: {} };
      let cpu: Awaited<ReturnType<typeof timeSteps>> | undefined;
      let web: typeof cpu;
      if (o.backends.includes("cpu")) {
        if (X.nRows <= o.cpuMaxCells) {
          cpu = await timeSteps(X, o);
          row.ms.cpu = cpu.ms;
          row.ranOn.cpu = cpu.ranOn;
          row.nnzHvg = cpu.nnzHvg;
          o.log(`  cpu    ${fmt(cpu.ms)}`);
        } else row.note = `CPU baseline skipped above ${o.cpuMaxCells} cells (--cpu-max-cells)`;
      }
      if (gpu) {
        if (!warmed) {
          const keep = new Uint8Array(X.nRows);
          keep.fill(1, 0, Math.min(X.nRows, 3000));
          await timeSteps(subsetRows(X, keep), o, gpu);
          warmed = true;
        }
        const before = { ...mem! };
        mem!.peakLiveBytes = 0;
        web = await timeSteps(X, o, gpu);
        row.ms.webgpu = web.ms;
        row.ranOn.webgpu = web.ranOn;
        row.nnzHvg = web.nnzHvg;
        row.deviceMemory = { buffers: mem!.buffers - before.buffers, requestedBytes: mem!.requestedBytes - before.requestedBytes, peakLiveBytes: mem!.peakLiveBytes };
        o.log(`  webgpu ${fmt(web.ms)}  (${JSON.stringify(web.ranOn)})`);
      }
      if (cpu && web) {
        const k = Math.min(10, cpu.pca.variance.length);
        const nc = cpu.pca.variance.length;
        let vr = 0;
        for (let c = 0; c < nc; c++) vr = Math.max(vr, Math.abs(web.pca.varianceRatio[c] - cpu.pca.varianceRatio[c]) / Math.abs(cpu.pca.varianceRatio[c]));
        row.agreement = {
          hvgEqual: cpu.hvg.every((h, j) => h === web!.hvg[j]),
          pc10Subspace: subspaceSimilarity(web.pca.scores, cpu.pca.scores, X.nRows, k, nc, nc),
          varianceRatioRelDiff: vr,
        };
        o.log(`  agreement ${JSON.stringify(row.agreement)}`);
      }
      rows.push(row);
    }
  } finally {
    gpu?.destroy();
  }
  return { adapter: gpu?.info, limits: gpu?.limits, ceiling, rows };
}

const fmt = (ms: Record<string, number>) => Object.entries(ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(", ");

export function stepsMarkdown(rows: StepsRow[]): string {
  const out = ["| input | cells | nnz | nnz (HVGs) | step | cpu ms | webgpu ms | cpu/webgpu |", "|---|---|---|---|---|---|---|---|"];
  for (const r of rows) {
    for (const s of ["normalize", "hvg", "pca", "total"]) {
      const c = r.ms.cpu?.[s];
      const w = r.ms.webgpu?.[s];
      const on = r.ranOn.webgpu?.[s];
      const wTxt = w === undefined ? "–" : w.toFixed(0) + (on && on !== "webgpu" ? " (cpu)" : "");
      out.push(`| ${r.name} | ${r.nCells} | ${r.nnz} | ${r.nnzHvg ?? "–"} | ${s} | ${c === undefined ? "–" : c.toFixed(0)} | ${wTxt} | ${c !== undefined && w !== undefined ? (c / w).toFixed(2) : "–"} |`);
    }
  }
  for (const r of rows) {
    if (r.agreement) out.push(`\n${r.name}: webgpu vs cpu — HVG sets equal ${r.agreement.hvgEqual}, PC1–10 subspace ${r.agreement.pc10Subspace.toFixed(6)}, variance ratio max rel. diff ${r.agreement.varianceRatioRelDiff.toExponential(2)}.`);
    if (r.deviceMemory) out.push(`\n${r.name}: device memory requested ${(r.deviceMemory.peakLiveBytes / 2 ** 20).toFixed(0)} MiB live at peak, ${(r.deviceMemory.requestedBytes / 2 ** 20).toFixed(0)} MiB in ${r.deviceMemory.buffers} buffers.`);
    if (r.note) out.push(`\n${r.name}: ${r.note}.`);
  }
  return out.join("\n") + "\n";
}
