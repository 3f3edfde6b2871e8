/**
 * The graph half of the pipeline on the device, step by step: kNN (k = 15 on 50 PCs, the IVF and
 * the exact search), connectivities (umap's fuzzy simplicial set), Leiden on them, the SNN graph
 * and Louvain on it, UMAP; CPU twins of the same steps on the same inputs up to --cpu-max-cells.
 * Issue #5's targets on an H100 at 1M cells: kNN ≤ 2 s, Leiden ≤ 1.5 s, UMAP ≤ 1.5 s. Used by
 * bench/gpu-device.sh:
 *
 *   node dist/bench.js graph --cells 1M --out graph-1M.json [--estimate-from graph-200k.json]
 *
 * Input: n points in 50 dimensions from a mixture of 30 anisotropic Gaussians (sizes uneven up to
 * ~15×, points in random order, variance front-loaded over the dimensions as PCs' is), float32.
 * The device is warmed up first (every device step once on 2,000 of the points: pipeline
 * compilation), then each step runs --repeats times: the table gives the median and the first run
 * (whole-step wall time: uploads, host parts and readbacks included). Steps run in order of
 * importance — the kNN the pipeline would choose (exact ≤ 50k cells, IVF above), connectivities,
 * Leiden, SNN, Louvain, UMAP, then the other kNN search, UMAP's host setup alone (pruning +
 * spectral init), then the CPU twins (the costly kNN searches last) — and the JSON is rewritten
 * after every step (a step that is running is recorded as such), so a stage killed by its time
 * limit keeps what finished.
 * --deadline-s skips steps (and further repeats) that would start after, or whose last run says
 * they would end after, that many seconds from process start. The exact kNN above 50k cells runs
 * only when its estimate — an earlier run's exact time scaled by (n / n₀)², from --estimate-from —
 * is within --exact-max-s; with no earlier run given it runs (then bounded by the deadline only).
 * Quality: kNN recall against a brute-force CPU search of 1,000 evenly spaced queries (worker
 * threads, float64 sums); modularity and cluster counts of Leiden / Louvain; CPU twin agreement
 * (IVF bytes identical, exact recall, connectivities max abs Δw, ARI of the partitions).
 */
import { availableParallelism, cpus, hostname } from "node:os";
import { dirname } from "node:path";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { acquireGpu, type Gpu, type KernelTime } from "../src/gpu/device.js";
import { adjustedRandIndex, knnRecall, modularity } from "../src/metrics/index.js";
import { fuzzySimplicialSetCpu, fuzzySimplicialSetGpu, snnGraphCpu, snnGraphGpu } from "../src/ops/connectivities.js";
import { knnExactCpu, knnExactGpu, type Knn } from "../src/ops/knn.js";
import { knnIvfCpu, knnIvfGpu } from "../src/ops/knnIvf.js";
import { leidenCpu, leidenGpu } from "../src/ops/leiden.js";
import { louvainCpu, louvainGpu } from "../src/ops/louvain.js";
import { umapLayoutCpu, umapLayoutGpu, umapSetup, type UmapGpuStats, type UmapOptions } from "../src/ops/umap.js";
import { KNN_EXACT_MAX_CELLS } from "../src/pipeline/analyze.js";
import { countDeviceMemory, type DeviceMemory } from "./child.js";

const DIM = 50;
const K = 15;
const CLUSTERS = 30;
const WARMUP_POINTS = 2000;
/** Issue #5's targets (ms on an H100 at 1M cells). */
const TARGET_CELLS = 1_000_000;
const TARGETS: Record<string, number> = { knn_ivf: 2000, knn_exact: 2000, leiden: 1500, umap: 1500 };
/** As the pipeline's scanpy preset: resolution 1, seed 0; Louvain with one start (Seurat's preset has 10). */
const CLUSTER_OPTS = { resolution: 1, seed: 0, nStarts: 1 };
const SNN_PRUNE = 1 / 15;
/** The pipeline's UMAP options (epochs: umap's default, 200 above 10,000 cells, else 500). */
const UMAP_OPTS: UmapOptions = { minDist: 0.5, spread: 1, seed: 0 };

export interface GraphDeviceOptions {
  n: number;
  repeats: number;
  cpuRepeats: number;
  cpuMaxCells: number;
  recallQueries: number;
  deadlineS: number;
  exactMaxS: number;
  estimateFrom?: string;
  seed: number;
  out?: string;
  /** Time each kernel on the device (timestamp queries): per-step kernel tables; adds a little to each submission. */
  profile?: boolean;
  log: (s: string) => void;
}

export interface Timing {
  /** Every run, in order (ms). */
  runs: number[];
  firstMs: number;
  medianMs: number;
  note?: string;
}

export interface GraphRow {
  step: string;
  n: number;
  status: "ok" | "running" | "skipped" | "error";
  device?: Timing;
  cpu?: Timing;
  cpuStatus?: string;
  targetMs?: number;
  quality: Record<string, number | string | boolean>;
  note?: string;
  /** With --profile: device time per kernel, summed over the step's timed runs. */
  kernels?: KernelTime[];
}

export interface GraphReport {
  date: string;
  machine: { host: string; cpu: string; cores: number; node: string };
  adapter?: Gpu["info"];
  limits?: Gpu["limits"];
  options: Omit<GraphDeviceOptions, "log">;
  data: { n: number; dims: number; clusters: number; k: number; buildMs: number };
  warmupMs?: number;
  deviceMemory?: DeviceMemory;
  rows: GraphRow[];
  wallSeconds: number;
  markdown?: string;
}

/** n × DIM float32 points of a Gaussian mixture, row-major; labels unused (the graph is what matters). */
export function mixturePoints50(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const centre = new Float64Array(CLUSTERS * DIM);
  const scale = new Float64Array(CLUSTERS * DIM);
  const weight = new Float64Array(CLUSTERS);
  let total = 0;
  for (let c = 0; c < CLUSTERS; c++) {
    for (let d = 0; d < DIM; d++) {
      // Like PCs: between-cluster spread and within-cluster noise both shrink along the dimensions.
      centre[c * DIM + d] = (rng.normal() * 1.6) / Math.sqrt(1 + d);
      scale[c * DIM + d] = (0.4 + rng.nextFloat()) / Math.sqrt(1 + d / 8);
    }
    weight[c] = 0.2 + rng.nextFloat() ** 2 * 3; // sizes differ up to ~15×
    total += weight[c];
  }
  const x = new Float32Array(n * DIM);
  for (let i = 0; i < n; i++) {
    let u = rng.nextFloat() * total;
    let c = 0;
    while (c < CLUSTERS - 1 && u >= weight[c]) u -= weight[c++];
    for (let d = 0; d < DIM; d++) x[i * DIM + d] = centre[c * DIM + d] + scale[c * DIM + d] * rng.normal();
  }
  return x;
}

/**
 * Exact k nearest (self first, then by float64 squared distance, then index) of queries[lo, hi)
 * against all n points; self-contained so it can run as a worker's source.
 */
function bruteTopK(x: Float32Array, n: number, d: number, k: number, queries: Int32Array, lo: number, hi: number): Int32Array {
  const out = new Int32Array((hi - lo) * k);
  const bd = new Float64Array(k - 1);
  const bi = new Int32Array(k - 1);
  for (let t = lo; t < hi; t++) {
    const q = queries[t];
    let size = 0;
    for (let j = 0; j < n; j++) {
      if (j === q) continue;
      let s = 0;
      for (let c = 0; c < d; c++) {
        const diff = x[q * d + c] - x[j * d + c];
        s += diff * diff;
      }
      // j ascends, so an equal distance never displaces a listed (smaller-index) point.
      if (size === k - 1 && s >= bd[k - 2]) continue;
      let pos = size < k - 1 ? size++ : k - 2;
      while (pos > 0 && bd[pos - 1] > s) {
        bd[pos] = bd[pos - 1];
        bi[pos] = bi[pos - 1];
        pos--;
      }
      bd[pos] = s;
      bi[pos] = j;
    }
    const o = (t - lo) * k;
    out[o] = q;
    for (let r = 0; r < size; r++) out[o + 1 + r] = bi[r];
  }
  return out;
}

/** Brute-force neighbour lists of `queries` on worker threads (one per core, at most 16). */
async function bruteForceSample(x: Float32Array, n: number, d: number, k: number, queries: Int32Array): Promise<Int32Array> {
  const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
  shared.set(x);
  const W = Math.max(1, Math.min(16, availableParallelism(), queries.length));
  const src = `const { parentPort, workerData: w } = require("node:worker_threads");
${bruteTopK.toString()}
parentPort.postMessage(${bruteTopK.name}(w.x, w.n, w.d, w.k, w.queries, w.lo, w.hi));`;
  const parts = await Promise.all(
    Array.from({ length: W }, (_, w) => {
      const lo = Math.floor((w * queries.length) / W);
      const hi = Math.floor(((w + 1) * queries.length) / W);
      return new Promise<Int32Array>((resolve, reject) => {
        const worker = new Worker(src, { eval: true, workerData: { x: shared, n, d, k, queries, lo, hi } });
        worker.once("message", (m: Int32Array) => {
          resolve(m);
          void worker.terminate();
        });
        worker.once("error", reject);
      });
    }),
  );
  const out = new Int32Array(queries.length * k);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Rows `queries` of a Knn's index lists. */
function rowsOf(knn: Knn, queries: Int32Array): Int32Array {
  const out = new Int32Array(queries.length * knn.k);
  for (let t = 0; t < queries.length; t++) out.set(knn.indices.subarray(queries[t] * knn.k, (queries[t] + 1) * knn.k), t * knn.k);
  return out;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const clusterCount = (labels: Int32Array) => labels.reduce((a, b) => Math.max(a, b), -1) + 1;

/** Largest |Δ| between two CSR matrices of the same pattern, or NaN when the patterns differ. */
function csrMaxDiff(a: Csr, b: Csr): number {
  if (a.nRows !== b.nRows || a.indptr[a.nRows] !== b.indptr[b.nRows]) return NaN;
  for (let i = 0; i <= a.nRows; i++) if (a.indptr[i] !== b.indptr[i]) return NaN;
  let m = 0;
  for (let e = 0; e < a.indptr[a.nRows]; e++) {
    if (a.indices[e] !== b.indices[e]) return NaN;
    m = Math.max(m, Math.abs(a.data[e] - b.data[e]));
  }
  return m;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** An earlier run's exact-kNN device time scaled by (n / n₀)² (the search is all pairs), if it has one. */
function exactEstimateMs(file: string, n: number): number | undefined {
  try {
    const prev = JSON.parse(readFileSync(file, "utf8")) as GraphReport;
    const row = prev.rows.find((r) => r.step === "knn_exact" && r.status === "ok" && r.device);
    return row ? row.device!.medianMs * (n / row.n) ** 2 : undefined;
  } catch {
    return undefined;
  }
}

export async function runGraph(o: GraphDeviceOptions): Promise<GraphReport> {
  const now = () => performance.now(); // ms since process start: the stage's clock
  const deadlineMs = o.deadlineS * 1000;
  const { n } = o;
  const { log: _log, ...options } = o;
  const report: GraphReport = {
    date: new Date().toISOString(),
    machine: { host: hostname(), cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version },
    options,
    data: { n, dims: DIM, clusters: CLUSTERS, k: K, buildMs: 0 },
    rows: [],
    wallSeconds: 0,
  };
  const t0 = now();
  const save = () => {
    report.wallSeconds = (now() - t0) / 1000;
    report.markdown = graphMarkdown(report);
    if (!o.out) return;
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, JSON.stringify(report, null, 1) + "\n");
  };

  const gpu = await acquireGpu({ profile: o.profile ?? false });
  if (o.profile && !gpu.profiling) o.log("profile: the adapter has no 'timestamp-query' feature; no kernel times");
  report.adapter = gpu.info;
  report.limits = gpu.limits;
  const i = gpu.info;
  o.log(`adapter: vendor ${i.vendor}, architecture ${i.architecture}, description ${i.description}, fallback ${i.isFallbackAdapter}; maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`);

  let tb = now();
  const x = mixturePoints50(n, o.seed);
  report.data.buildMs = now() - tb;
  o.log(`${n} points × ${DIM} dims (mixture of ${CLUSTERS}): ${report.data.buildMs.toFixed(0)} ms to build`);
  save();

  // Warm-up: every device step once on a small slice, so the timed runs exclude pipeline compilation.
  tb = now();
  try {
    const m = Math.min(n, WARMUP_POINTS);
    const xs = x.subarray(0, m * DIM);
    const kw = Math.min(K, m);
    const kn = await knnExactGpu(gpu, xs, m, DIM, kw);
    await knnIvfGpu(gpu, xs, m, DIM, kw, { seed: 0 });
    const g = await fuzzySimplicialSetGpu(gpu, kn);
    await leidenGpu(gpu, g, CLUSTER_OPTS);
    await louvainGpu(gpu, await snnGraphGpu(gpu, kn, SNN_PRUNE), CLUSTER_OPTS);
    await umapLayoutGpu(gpu, g, { ...UMAP_OPTS, nEpochs: 20 });
    report.warmupMs = now() - tb;
    o.log(`warm-up (every device step on ${m} points: pipeline compilation): ${report.warmupMs.toFixed(0)} ms`);
  } catch (e) {
    o.log(`warm-up failed: ${(e as Error).message}`);
  }
  const mem = countDeviceMemory(gpu);
  report.deviceMemory = mem;
  save();

  const remaining = () => deadlineMs - now();
  /** Runs fn `repeats` times while the last run says another fits before the deadline. */
  async function timed<T>(fn: () => Promise<T> | T, repeats: number): Promise<{ t: Timing; out: T }> {
    const runs: number[] = [];
    let out!: T;
    let note: string | undefined;
    for (let r = 0; r < repeats; r++) {
      if (r > 0 && runs[r - 1] > remaining()) {
        note = `${r} of ${repeats} runs (deadline)`;
        break;
      }
      const ts = now();
      out = await fn();
      runs.push(now() - ts);
    }
    return { t: { runs, firstMs: runs[0], medianMs: median(runs), note }, out };
  }

  const row = (step: string): GraphRow => {
    const r: GraphRow = { step, n, status: "running", quality: {} };
    if (TARGETS[step] !== undefined) r.targetMs = TARGETS[step];
    report.rows.push(r);
    return r;
  };
  const fmtT = (t?: Timing) => (t ? `median ${t.medianMs.toFixed(0)} ms of ${t.runs.length} (first ${t.firstMs.toFixed(0)})${t.note ? `, ${t.note}` : ""}` : "–");
  /** One device step, guarded: skipped past the deadline or without its input, errors recorded. */
  async function deviceStep<T>(step: string, ready: boolean, fn: () => Promise<T>, quality?: (out: T, r: GraphRow) => Promise<void> | void, skipWhy?: string): Promise<T | undefined> {
    const r = row(step);
    const why = skipWhy ?? (!ready ? "input missing (an earlier step failed or was skipped)" : remaining() <= 0 ? "deadline" : undefined);
    if (why) {
      r.status = "skipped";
      r.note = why;
      o.log(`${step}: skipped (${why})`);
      save();
      return undefined;
    }
    save();
    try {
      gpu.resetProfile();
      const { t, out } = await timed(fn, o.repeats);
      r.device = t;
      r.status = "ok";
      if (gpu.profiling) r.kernels = gpu.kernelProfile();
      save();
      if (quality) await quality(out, r);
      o.log(`${step}: device ${fmtT(t)}${Object.keys(r.quality).length ? `; ${JSON.stringify(r.quality)}` : ""}`);
      save();
      return out;
    } catch (e) {
      r.status = "error";
      r.note = (e as Error).message.split("\n")[0];
      o.log(`${step}: device error: ${r.note}`);
      save();
      return undefined;
    }
  }

  // Recall against brute force on a sample of queries (computed once, on first use).
  const nq = Math.min(n, o.recallQueries);
  const queries = Int32Array.from({ length: nq }, (_, t) => Math.floor((t * n) / nq));
  let truth: Int32Array | undefined;
  const sampleRecall = async (knn: Knn, r: GraphRow) => {
    const tq = now();
    truth ??= await bruteForceSample(x, n, DIM, K, queries);
    r.quality[`recall (${nq} q, brute force)`] = Number(knnRecall(rowsOf(knn, queries), truth, nq, K).toFixed(4));
    r.quality["recall sample ms"] = Math.round(now() - tq);
  };

  const pipelineKnn = n > KNN_EXACT_MAX_CELLS ? "knn_ivf" : "knn_exact";
  const runKnn = async (which: string, skipWhy?: string) =>
    deviceStep(
      which,
      true,
      () => (which === "knn_ivf" ? knnIvfGpu(gpu, x, n, DIM, K, { seed: 0 }) : knnExactGpu(gpu, x, n, DIM, K)),
      (out, r) => {
        if (which === pipelineKnn) r.quality["pipeline's choice"] = true;
        return sampleRecall(out, r);
      },
      skipWhy,
    );
  const knnByStep = new Map<string, Knn>();
  const first = await runKnn(pipelineKnn);
  if (first) knnByStep.set(pipelineKnn, first);
  const knn = first;

  const conn = await deviceStep("connectivities", knn !== undefined, () => fuzzySimplicialSetGpu(gpu, knn!), (g, r) => {
    r.quality.nnz = g.indptr[g.nRows];
  });
  const leiden = await deviceStep("leiden", conn !== undefined, () => leidenGpu(gpu, conn!, CLUSTER_OPTS), (l, r) => {
    r.quality.clusters = clusterCount(l);
    r.quality.modularity = Number(modularity(conn!, l, CLUSTER_OPTS.resolution).toFixed(4));
  });
  const snn = await deviceStep("snn", knn !== undefined, () => snnGraphGpu(gpu, knn!, SNN_PRUNE), (g, r) => {
    r.quality.nnz = g.indptr[g.nRows];
  });
  const louvain = await deviceStep("louvain", snn !== undefined, () => louvainGpu(gpu, snn!, CLUSTER_OPTS), (l, r) => {
    r.quality.clusters = clusterCount(l);
    r.quality.modularity = Number(modularity(snn!, l, CLUSTER_OPTS.resolution).toFixed(4));
    const limit = gpu.limits.maxStorageBufferBindingSize;
    // louvainGpu runs louvainCpu when the arcs exceed one binding (fitsLocalMovingGpu; nnz bounds the arcs).
    if (snn!.indptr[snn!.nRows] * 8 > limit || 12 * n > limit) r.note = "graph may exceed one binding: louvainGpu then runs on the CPU";
  });
  const stats: UmapGpuStats = { chunks: 0 };
  const umap = await deviceStep("umap", conn !== undefined, () => umapLayoutGpu(gpu, conn!, UMAP_OPTS, stats), (_, r) => {
    r.quality.epochs = UMAP_OPTS.nEpochs ?? (n <= 10000 ? 500 : 200);
    r.quality.chunks = stats.chunks;
  });
  void umap;

  // The other kNN search: the exact one above 50k cells only when its estimate fits.
  const other = pipelineKnn === "knn_ivf" ? "knn_exact" : "knn_ivf";
  let skipOther: string | undefined;
  if (other === "knn_exact") {
    const est = o.estimateFrom ? exactEstimateMs(o.estimateFrom, n) : undefined;
    if (o.estimateFrom && est === undefined) skipOther = `no exact-kNN time in ${o.estimateFrom} to estimate from`;
    else if (est !== undefined && est > o.exactMaxS * 1000) skipOther = `estimated ${(est / 1000).toFixed(1)} s > --exact-max-s ${o.exactMaxS}`;
    else if (est !== undefined && est > remaining()) skipOther = `estimated ${(est / 1000).toFixed(1)} s > ${(remaining() / 1000).toFixed(0)} s left`;
    if (est !== undefined) o.log(`knn_exact estimate from ${o.estimateFrom}: ${(est / 1000).toFixed(1)} s`);
  }
  const otherKnn = await runKnn(other, skipOther);
  if (otherKnn) knnByStep.set(other, otherKnn);
  if (knnByStep.size === 2) {
    const r = report.rows.find((x) => x.step === "knn_ivf")!;
    const ex = knnByStep.get("knn_exact")!;
    r.quality["recall vs device exact (all n)"] = Number(knnRecall(knnByStep.get("knn_ivf")!.indices, ex.indices, n, K).toFixed(4));
    save();
  }

  // UMAP's host part alone (pruning, a and b, spectral init), once: how much of "umap" is not the epochs.
  if (conn && remaining() > 0) {
    const r = row("umap_setup_host");
    const ts = now();
    umapSetup(conn, UMAP_OPTS);
    const ms = now() - ts;
    r.status = "ok";
    r.note = "host only (pruning + spectral init), part of the umap step";
    r.cpu = { runs: [ms], firstMs: ms, medianMs: ms };
    o.log(`umap_setup_host: ${ms.toFixed(0)} ms`);
    save();
  }
  gpu.destroy();

  // CPU twins on the same inputs, up to --cpu-max-cells.
  const cpuStep = async <T>(step: string, input: unknown, fn: () => T, quality?: (out: T, r: GraphRow) => void): Promise<void> => {
    const r = report.rows.find((x) => x.step === step);
    if (!r) return;
    const why = n > o.cpuMaxCells ? `skipped above ${o.cpuMaxCells} cells (--cpu-max-cells)` : input === undefined ? "skipped (no device input)" : remaining() <= 0 ? "skipped (deadline)" : undefined;
    if (why) {
      r.cpuStatus = why;
      save();
      return;
    }
    r.cpuStatus = "running";
    save();
    try {
      const { t, out } = await timed(fn, o.cpuRepeats);
      r.cpu = t;
      r.cpuStatus = "ok";
      quality?.(out, r);
      o.log(`${step}: cpu ${fmtT(t)}`);
    } catch (e) {
      r.cpuStatus = `error: ${(e as Error).message.split("\n")[0]}`;
      o.log(`${step}: cpu ${r.cpuStatus}`);
    }
    save();
  };
  await cpuStep("connectivities", conn, () => fuzzySimplicialSetCpu(knn!), (g, r) => {
    r.quality["max abs Δw vs CPU"] = csrMaxDiff(g, conn!).toExponential(1);
  });
  await cpuStep("leiden", leiden, () => leidenCpu(conn!, CLUSTER_OPTS), (l, r) => {
    r.quality["CPU clusters"] = clusterCount(l);
    r.quality["CPU modularity"] = Number(modularity(conn!, l, CLUSTER_OPTS.resolution).toFixed(4));
    r.quality["ARI vs CPU"] = Number(adjustedRandIndex(l, leiden!).toFixed(3));
  });
  await cpuStep("snn", snn, () => snnGraphCpu(knn!, SNN_PRUNE), (g, r) => {
    r.quality["max abs Δw vs CPU"] = csrMaxDiff(g, snn!).toExponential(1);
  });
  await cpuStep("louvain", louvain, () => louvainCpu(snn!, CLUSTER_OPTS), (l, r) => {
    r.quality["CPU clusters"] = clusterCount(l);
    r.quality["CPU modularity"] = Number(modularity(snn!, l, CLUSTER_OPTS.resolution).toFixed(4));
    r.quality["ARI vs CPU"] = Number(adjustedRandIndex(l, louvain!).toFixed(3));
  });
  await cpuStep("umap", conn, () => umapLayoutCpu(conn!, UMAP_OPTS));
  const cpuKnn = (which: string, dev: Knn | undefined) =>
    cpuStep(which, dev, () => (which === "knn_ivf" ? knnIvfCpu(x, n, DIM, K, { seed: 0 }) : knnExactCpu(x, n, DIM, K)), (out, r) => {
      if (which === "knn_ivf") r.quality["CPU twin identical"] = sameBytes(out.indices, dev!.indices) && sameBytes(out.distances, dev!.distances);
      else r.quality["recall vs CPU exact (all n)"] = Number(knnRecall(dev!.indices, out.indices, n, K).toFixed(4));
    });
  await cpuKnn(pipelineKnn, first);
  await cpuKnn(other, otherKnn);
  save();
  return report;
}

const fmtMs = (v?: number) => (v === undefined ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(1));

export function graphMarkdown(r: GraphReport): string {
  const out = [
    "| step | n | device ms (median) | first run ms | CPU ms | CPU/device | target (H100, 1M) | quality |",
    "|---|---:|---:|---:|---:|---:|---|---|",
  ];
  for (const x of r.rows) {
    // "running" in a saved report: the process ended (stage limit) before the step did.
    const unfinished = (st?: string) => (st === "running" ? "did not finish" : st);
    const dev = x.device ? `${fmtMs(x.device.medianMs)} (n=${x.device.runs.length})` : x.status === "ok" ? "–" : unfinished(x.status) + (x.note ? `: ${x.note}` : "");
    const cpu = x.cpu ? `${fmtMs(x.cpu.medianMs)} (n=${x.cpu.runs.length})` : (unfinished(x.cpuStatus) ?? "–");
    const ratio = x.device && x.cpu ? (x.cpu.medianMs / x.device.medianMs).toFixed(2) : "–";
    let target = "–";
    if (x.targetMs !== undefined) {
      target = `≤ ${x.targetMs}`;
      if (x.n >= TARGET_CELLS && x.device) target += x.device.medianMs <= x.targetMs ? " met" : " not met";
    }
    const q = Object.entries(x.quality)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    out.push(`| ${x.step} | ${x.n} | ${dev} | ${x.device ? fmtMs(x.device.firstMs) : "–"} | ${cpu} | ${ratio} | ${target} | ${q}${x.note && x.status === "ok" ? ` (${x.note})` : ""} |`);
  }
  const a = r.adapter;
  out.push("");
  out.push(`Adapter: ${a ? `${a.vendor} / ${a.architecture} / ${a.description}, fallback ${a.isFallbackAdapter}` : "none"}. Points: ${r.data.n} × ${r.data.dims} (mixture of ${r.data.clusters}), k = ${r.data.k}; built in ${fmtMs(r.data.buildMs)} ms. Warm-up (compilation, every device step on ${WARMUP_POINTS} points): ${fmtMs(r.warmupMs)} ms.`);
  if (r.deviceMemory) out.push(`Device memory requested after the warm-up: ${(r.deviceMemory.peakLiveBytes / 2 ** 20).toFixed(0)} MiB live at peak, ${(r.deviceMemory.requestedBytes / 2 ** 20).toFixed(0)} MiB in ${r.deviceMemory.buffers} buffers in all.`);
  out.push(`Wall time ${r.wallSeconds.toFixed(1)} s.`);
  const profiled = r.rows.filter((x) => x.kernels?.length && x.device);
  if (profiled.length) {
    out.push("", "Device time per kernel (timestamp queries; per run, the step's runs averaged; the rest of the step's wall time is host work, transfers and waits):", "");
    out.push("| step | kernel | dispatches | device ms | % of step wall |", "|---|---|---:|---:|---:|");
    for (const x of profiled) {
      const runs = x.device!.runs.length;
      const wall = x.device!.runs.reduce((a, b) => a + b, 0) / runs;
      const top = x.kernels!.slice(0, 6);
      const rest = x.kernels!.slice(6);
      if (rest.length) top.push({ kernel: `${rest.length} more`, dispatches: rest.reduce((a, k) => a + k.dispatches, 0), ms: rest.reduce((a, k) => a + k.ms, 0) });
      const total = x.kernels!.reduce((a, k) => a + k.ms, 0) / runs;
      for (const k of top) out.push(`| ${x.step} | ${k.kernel} | ${Math.round(k.dispatches / runs)} | ${(k.ms / runs).toFixed(2)} | ${((100 * k.ms) / runs / wall).toFixed(1)} |`);
      out.push(`| ${x.step} | all kernels | | ${total.toFixed(2)} | ${((100 * total) / wall).toFixed(1)} |`);
    }
  }
  return out.join("\n") + "\n";
}
