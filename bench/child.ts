/**
 * One cellgpu run in its own process (the bench starts one per backend and repeat, so peak RSS
 * is per run): read the 10x directory, analyze with the requested backend, write timings,
 * shapes for the work model, and the outputs the accuracy columns need to a JSON file.
 */
import { writeFileSync } from "node:fs";
import type { CellMatrix } from "../src/core/cellMatrix.js";
import { subsetCols } from "../src/core/csr.js";
import { acquireGpu, type Gpu } from "../src/gpu/device.js";
import { readTenxMtxDir } from "../src/io/mtx.js";
import { analyze, type StepRecord } from "../src/pipeline/analyze.js";
import { presetDefaults, type Backend } from "../src/pipeline/params.js";
import type { SparseOut } from "../src/pipeline/result.js";

export const TRUST_SAMPLE = 2000;

export interface ChildRequest {
  dir: string;
  backend: Backend;
  minGenes: number;
  minCells: number;
  maxGenes?: number;
  maxPctMt?: number;
  /** Write the outputs (HVGs, PCs, kNN, clusters, UMAP, markers) besides the timings. */
  dumpOutputs: boolean;
  outFile: string;
}

export interface Shapes {
  nCellsIn: number;
  nGenesIn: number;
  nnzIn: number;
  nCells: number;
  nGenes: number;
  nnz: number;
  nHvg: number;
  nnzHvg: number;
  nComps: number;
  nPcs: number;
  k: number;
  graphNnz: number;
  umapEpochs: number;
  nClusters: number;
}

export interface ChildOutputs {
  barcodes: string[];
  hvgFeatureIndex: number[];
  /** nCells × 10, row-major. */
  pcs10: number[];
  /** Evenly spaced cells (≤ TRUST_SAMPLE) for trustworthiness: their PCs (× nPcs) and UMAP rows. */
  trustCells: number[];
  trustPcs: number[];
  nPcs: number;
  knnK: number;
  knn: number[];
  clusters: number[];
  umap: number[];
  /** per cluster, the feature_index of its top 25 markers. */
  markersTop25: number[][];
}

/** Device memory the run asked for, counted by wrapping Gpu.createBuffer (bench-side, no Gpu hook). */
export interface DeviceMemory {
  buffers: number;
  /** Sum of the sizes of every buffer created. */
  requestedBytes: number;
  /** Largest sum of sizes of buffers created and not yet destroyed (a buffer left to the GC counts as live). */
  peakLiveBytes: number;
}

/** Counts the buffers a Gpu creates (uploads, outputs, readback staging), live and in total. */
export function countDeviceMemory(gpu: Gpu): DeviceMemory {
  const m: DeviceMemory = { buffers: 0, requestedBytes: 0, peakLiveBytes: 0 };
  let live = 0;
  const create = gpu.createBuffer.bind(gpu);
  gpu.createBuffer = (byteSize, usage, label) => {
    const buf = create(byteSize, usage, label);
    const size = buf.size;
    m.buffers++;
    m.requestedBytes += size;
    live += size;
    m.peakLiveBytes = Math.max(m.peakLiveBytes, live);
    const destroy = buf.destroy.bind(buf);
    let freed = false;
    buf.destroy = () => {
      if (!freed) live -= size;
      freed = true;
      destroy();
    };
    return buf;
  };
  return m;
}

export interface ChildResult {
  backend: Backend;
  readMs: number;
  steps: StepRecord[];
  maxRssMiB: number;
  deviceMemory?: DeviceMemory;
  shapes: Shapes;
  outputs?: ChildOutputs;
  error?: string;
}

/** Keeps only Gene Expression rows when a directory mixes feature types (CITE-seq). */
function geneExpressionOnly(cm: CellMatrix): CellMatrix {
  const types = cm.var.columns.get("feature_types");
  if (types?.kind !== "string" || types.values.every((t) => t === "Gene Expression")) return cm;
  const keep = Uint8Array.from(types.values, (t) => (t === "Gene Expression" ? 1 : 0));
  const idx: number[] = [];
  keep.forEach((k, i) => k && idx.push(i));
  const cols = new Map([...cm.var.columns].map(([n, c]) => [n, c.kind === "string" ? { kind: "string" as const, values: idx.map((i) => c.values[i]) } : c]));
  const fi = cm.var.columns.get("feature_index");
  if (fi?.kind === "number") cols.set("feature_index", { kind: "number", values: Float64Array.from(idx, (i) => fi.values[i]) });
  return { ...cm, X: subsetCols(cm.X, keep), var: { index: idx.map((i) => cm.var.index[i]), columns: cols } };
}

/** Stored entries of the counts layer, all and on the HVGs (whichever sparse form it is held in). */
function countNnz(m: SparseOut, hvg: ArrayLike<number>): { nnz: number; nnzHvg: number } {
  let nnz = 0;
  let nnzHvg = 0;
  const parts = "blocks" in m ? m.blocks() : [m];
  for (const b of parts) {
    const e = b.indptr[b.nRows];
    nnz += e;
    for (let o = 0; o < e; o++) if (hvg[b.indices[o]]) nnzHvg++;
  }
  return { nnz, nnzHvg };
}

export async function runChild(req: ChildRequest): Promise<void> {
  const t0 = performance.now();
  let cm = readTenxMtxDir(req.dir);
  // feature_index = row in features.tsv, carried through the gene filter to match the reference
  cm.var.columns.set("feature_index", { kind: "number", values: Float64Array.from(cm.var.index, (_, i) => i) });
  cm = geneExpressionOnly(cm);
  const readMs = performance.now() - t0;
  const p = {
    ...presetDefaults("scanpy"),
    minGenes: req.minGenes,
    minCells: req.minCells,
    maxGenes: req.maxGenes,
    maxPctMt: req.maxPctMt,
    backend: req.backend,
  };
  // webgpu: any adapter (software ones included, so the column fills on lavapipe too), else fail
  let gpu: Gpu | undefined;
  let deviceMemory: DeviceMemory | undefined;
  if (req.backend === "webgpu") {
    gpu = await acquireGpu();
    deviceMemory = countDeviceMemory(gpu);
  }
  const out = await analyze(cm, p, { gpu, warn: (m) => process.stderr.write(m + "\n") });
  gpu?.destroy();
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;

  const res = out.result;
  const fi = res.var.columns.get("feature_index");
  if (fi?.kind !== "number") throw new Error("feature_index column lost in the pipeline");
  const featureIndex = Array.from(fi.values);
  const { nnz, nnzHvg } = countNnz(res.layers.get("counts")!, out.hvgMask);
  const nComps = out.varianceRatio.length;
  const nPcs = Math.min(p.nPcs, nComps);
  const shapes: Shapes = {
    nCellsIn: cm.X.nRows,
    nGenesIn: cm.X.nCols,
    nnzIn: cm.X.indptr[cm.X.nRows],
    nCells: out.nCells,
    nGenes: out.nGenes,
    nnz,
    nHvg: out.hvgMask.reduce((s, x) => s + x, 0),
    nnzHvg,
    nComps,
    nPcs,
    k: out.knn.k,
    graphNnz: res.obsp.get("connectivities")!.indptr[out.nCells],
    umapEpochs: out.nCells <= 10_000 ? 500 : 200,
    nClusters: out.nClusters,
  };
  let outputs: ChildOutputs | undefined;
  if (req.dumpOutputs) {
    const names = res.uns.rank_genes_groups as unknown as { names: { recarray: { columns: string[][] } } };
    const byName = new Map(res.var.index.map((n, i) => [n, featureIndex[i]]));
    const pcs10: number[] = [];
    for (let i = 0; i < out.nCells; i++) for (let c = 0; c < 10; c++) pcs10.push(out.pcaScores[i * nComps + c]);
    const m = Math.min(TRUST_SAMPLE, out.nCells);
    const trustCells = Array.from({ length: m }, (_, j) => Math.floor((j * out.nCells) / m));
    const trustPcs: number[] = [];
    for (const i of trustCells) for (let c = 0; c < nPcs; c++) trustPcs.push(out.pcaScores[i * nComps + c]);
    outputs = {
      barcodes: res.obs.index,
      hvgFeatureIndex: featureIndex.filter((_, j) => out.hvgMask[j]),
      pcs10,
      trustCells,
      trustPcs,
      nPcs,
      knnK: out.knn.k,
      knn: Array.from(out.knn.indices),
      clusters: Array.from(out.clusters),
      umap: Array.from(out.umap),
      markersTop25: names.names.recarray.columns.map((col) => col.slice(0, 25).map((n) => byName.get(n)!)),
    };
  }
  const result: ChildResult = { backend: req.backend, readMs, steps: out.steps, maxRssMiB, deviceMemory, shapes, outputs };
  writeFileSync(req.outFile, JSON.stringify(result));
}
