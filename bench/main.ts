/**
 * cellgpu benchmark suite.
 *
 *   npm run bench [-- --datasets a,b --sizes 10k,50k --backends auto|cpu|webgpu|cpu,webgpu --peers scranjs --repeat N]
 *   node dist/bench.js simulate --cells 50000 --out dir --seed 1
 *   node dist/bench.js fit-sim datasets/pbmc3k        (re-estimates src/sim/pbmc3k_genes.tsv.gz)
 *
 * Per dataset and repeat, each backend runs in a child process and then the peer (scran.js) in
 * another, alternating (A B A B …); the table shows medians over repeats, ratios cellgpu/peer,
 * the scanpy_like / Seurat timings recorded elsewhere, accuracy against the scanpy_like
 * reference, peak RSS, and the bytes/FLOPs model. The JSON in bench/results holds the same.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, hostname, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Command } from "commander";
import { readTenxMtxDir } from "../src/io/mtx.js";
import type { Backend } from "../src/pipeline/params.js";
import { fitSimParams, PARAMS_FILE, writeSimParams } from "../src/sim/params.js";
import { simulateTenx } from "../src/sim/simulate.js";
import { compare, labelAri, loadReference, umapTrust, type Agreement, type Comparable } from "./accuracy.js";
import { runChild, type ChildRequest, type ChildResult } from "./child.js";
import { countCells, parseSize, readTsv, referenceDatasets, simulatedDataset, type BenchDataset } from "./datasets.js";
import { measureGpuCeiling, pctOf, stepWork, type GpuCeiling } from "./work.js";
import type { GpuAdapterInfo } from "../src/gpu/device.js";

const STEPS = ["read", "qc", "normalize", "hvg", "pca", "neighbors_knn", "neighbors_graph", "leiden", "umap", "rank_genes_groups"];

/** Recorded steps of the reference tools summed into the cellgpu step they correspond to. */
const RECORDED: Record<string, Record<string, string[]>> = {
  scanpy_like: {
    read: ["read"],
    qc: ["filter_cells", "filter_genes", "qc_metrics_filter"],
    normalize: ["normalize_total", "log1p"],
    hvg: ["hvg"],
    pca: ["scale", "pca"],
    neighbors_knn: ["neighbors_knn"],
    neighbors_graph: ["neighbors_connectivities"],
    leiden: ["leiden"],
    umap: ["umap"],
    rank_genes_groups: ["rank_genes_groups"],
  },
  seurat: {
    read: ["read"],
    qc: ["create_qc", "filter"],
    normalize: ["normalize"],
    hvg: ["hvg"],
    pca: ["scale", "pca"],
    neighbors_knn: ["neighbors"], // annoy kNN and SNN graph in one call
    leiden: ["clusters"], // Louvain
    umap: ["umap"],
    rank_genes_groups: ["markers"],
  },
};

interface PeerResult {
  peer: string;
  version: string;
  threads: number;
  nCells: number;
  steps: Record<string, number>;
  maxRssMiB: number;
  clusters: number[];
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", rej);
    p.on("close", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

/** This script again (bundle or tsx), with the loader flags it was started with. */
function selfCommand(): string[] {
  return [...process.execArgv, process.argv[1]];
}

function peerScript(): string {
  const here = dirname(process.argv[1]);
  for (const p of [join(here, "peers/scranjs.mjs"), join(here, "../bench/peers/scranjs.mjs"), resolve("bench/peers/scranjs.mjs")]) {
    if (existsSync(p)) return p;
  }
  throw new Error("bench/peers/scranjs.mjs not found");
}

async function runCellgpu(ds: BenchDataset, backend: Backend, dump: boolean, tmp: string): Promise<ChildResult> {
  const req: ChildRequest = {
    dir: ds.dir,
    backend,
    minGenes: ds.minGenes,
    minCells: ds.minCells,
    maxGenes: ds.maxGenes,
    maxPctMt: ds.maxPctMt,
    dumpOutputs: dump,
    outFile: join(tmp, `cellgpu-${backend}.json`),
  };
  const reqFile = join(tmp, "request.json");
  writeFileSync(reqFile, JSON.stringify(req));
  rmSync(req.outFile, { force: true });
  const r = await run(process.execPath, ["--max-old-space-size=16384", ...selfCommand(), "child", "--request", reqFile]);
  if (r.code !== 0 || !existsSync(req.outFile)) {
    const msg = (r.stderr.trim().split("\n").filter((l) => /Error|error/.test(l))[0] ?? r.stderr.trim().split("\n").pop() ?? "").slice(0, 300);
    return { backend, readMs: NaN, steps: [], maxRssMiB: NaN, shapes: undefined as never, error: `exit ${r.code}: ${msg}` };
  }
  return JSON.parse(readFileSync(req.outFile, "utf8")) as ChildResult;
}

async function runScranjs(ds: BenchDataset, threads: number, epochs: number): Promise<PeerResult | { error: string }> {
  const args = [peerScript(), "--dir", ds.dir, "--threads", String(threads), "--min-genes", String(ds.minGenes), "--epochs", String(epochs)];
  if (ds.maxGenes !== undefined) args.push("--max-genes", String(ds.maxGenes));
  if (ds.maxPctMt !== undefined) args.push("--max-pct-mt", String(ds.maxPctMt));
  const r = await run(process.execPath, ["--max-old-space-size=16384", ...args]);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !line.startsWith("{")) return { error: `exit ${r.code}: ${r.stderr.trim().split("\n").slice(-3).join(" ").slice(0, 300)}` };
  return JSON.parse(line) as PeerResult;
}

function recordedTimings(dir: string | undefined, tool: string): Record<string, number> | undefined {
  if (!dir || !existsSync(join(dir, "timings.tsv"))) return undefined;
  const t = new Map(readTsv(join(dir, "timings.tsv")).rows.map((r) => [r[0], Number(r[1]) * 1000] as [string, number]));
  const out: Record<string, number> = {};
  for (const [step, parts] of Object.entries(RECORDED[tool])) {
    if (parts.every((p) => t.has(p))) out[step] = parts.reduce((s, p) => s + t.get(p)!, 0);
  }
  if (t.has("total")) out.total = t.get("total")! - (t.get("read") ?? 0);
  return out;
}

interface DatasetReport {
  name: string;
  dir: string;
  /** Most successful runs of any backend or the peer. */
  repeats: number;
  /** Successful runs per backend and for the peer (the n behind each median). */
  repeatsBy: Record<string, number>;
  /** Why a backend ran fewer repeats than asked (policy or budget), per backend. */
  repeatNotes: Record<string, string>;
  nCells?: number;
  nGenes?: number;
  nClusters?: number;
  /** step → backend → median ms (and all runs). */
  timings: Record<string, Record<string, { median: number; runs: number[] }>>;
  /** step → requested backend → the backend(s) that actually ran it (the pipeline falls back per step). */
  ranOn: Record<string, Record<string, string>>;
  peer?: { name: string; threads: number; nCells: number; timings: Record<string, { median: number; runs: number[] }>; maxRssMiB: number; error?: string };
  ratios: Record<string, Record<string, number>>;
  recorded: { scanpy_like?: Record<string, number>; seurat?: Record<string, number>; note: string };
  accuracy: Record<string, Partial<Agreement> & { ari_labels?: number; labels?: string; umap_trustworthiness?: number }>;
  backendAgreement?: Agreement;
  peakRssMiB: Record<string, number>;
  /** backend → device memory the run requested (MiB): peak live and total created. */
  deviceMiB: Record<string, { peakLive: number; requested: number; buffers: number }>;
  /** Rates from the bytes/FLOPs model; pct* = % of this run's measured device ceiling, for steps that ran on webgpu. */
  work: Record<string, Record<string, { bytes: number | null; flops: number | null; GBps: number | null; GFLOPps: number | null; pctCopy?: number | null; pctMatmul?: number | null }>>;
  errors: string[];
}

/** The adapter the webgpu children will get, and its ceiling measured once (in this process). */
async function adapterAndCeiling(backends: Backend[], log: (s: string) => void): Promise<{ name: string; info?: GpuAdapterInfo; ceiling: GpuCeiling | null }> {
  if (!backends.includes("webgpu")) return { name: "cpu", ceiling: null };
  let gpu;
  try {
    const { acquireGpu } = await import("../src/gpu/device.js");
    gpu = await acquireGpu();
  } catch (e) {
    log(`no WebGPU adapter: ${(e as Error).message}`);
    return { name: "no-adapter", ceiling: null };
  }
  const info = gpu.info;
  const name = info.description || `${info.vendor}-${info.architecture}`;
  log(`adapter: vendor ${info.vendor}, architecture ${info.architecture}, description ${info.description}, fallback ${info.isFallbackAdapter}`);
  log("measuring the device ceiling (buffer copy, f32 matmul) …");
  try {
    const ceiling = await measureGpuCeiling(gpu);
    log(ceilingLine(ceiling));
    return { name, info, ceiling };
  } finally {
    gpu.destroy();
  }
}

function ceilingLine(c: GpuCeiling): string {
  const m = Object.entries(c.methods).map(([k, v]) => `${k} ${v.median.toFixed(2)}${k.startsWith("matmul") ? ` GFLOP/s (n=${v.size})` : ` GB/s (${(v.size / 2 ** 20).toFixed(0)} MiB)`}`);
  return `Device ceiling (median of ${c.methods.copyBufferToBuffer.runs.length} runs): copy ${c.copyGBps.toFixed(2)} GB/s read+write (${c.copyMethod}), f32 matmul ${c.matmulGflops.toFixed(2)} GFLOP/s (${c.matmulKernel}); all: ${m.join(", ")}.`;
}

/** "qc 1.2 s, pca 40.1 s, …": a finished run's steps, for the progress log. */
function stepSummary(r: ChildResult): string {
  const by = new Map<string, number>();
  for (const s of r.steps) by.set(s.step, (by.get(s.step) ?? 0) + s.ms);
  return [`read ${(r.readMs / 1000).toFixed(1)} s`, ...[...by].map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`)].join(", ");
}

/**
 * Seconds per run (child start, read, all steps, exit) as a + b·n + c·n² in cells n, fitted to
 * runs on the 2-core VM (bench/results/2026-11-27-*: pbmc3k, kang, 10k and 50k simulated); the
 * n² term is the all-pairs kNN. A rough model for the up-front estimate, not a prediction.
 */
const RUN_MODEL: Record<string, [number, number, number]> = {
  cpu: [2, 2.0e-3, 9e-9],
  scranjs: [3, 2.2e-3, 6e-9],
  webgpu: [4, 2.6e-3, 9e-9], // a hardware adapter: assumed no slower than the CPU backend
  "webgpu-software": [6, 5.0e-3, 9e-8], // 50k: ≈ 480 s (kNN, Leiden, UMAP, markers ≈ 90 % of it)
};

/** Per dataset: modelled seconds of one repeat of the cpu backend plus the peer (rest) and of webgpu (gpu). */
function estimateSeconds(cells: number[], backends: Backend[], peer: boolean, slowGpu: boolean): { name: string; cells: number; rest: number; gpu: number }[] {
  const t = (k: string, n: number) => RUN_MODEL[k][0] + RUN_MODEL[k][1] * n + RUN_MODEL[k][2] * n * n;
  return cells.map((n) => ({
    name: `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k cells`,
    cells: n,
    rest: (backends.includes("cpu") ? t("cpu", n) : 0) + (peer ? t("scranjs", n) : 0),
    gpu: backends.includes("webgpu") ? t(slowGpu ? "webgpu-software" : "webgpu", n) : 0,
  }));
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "unknown";

async function bench(opts: {
  datasets: string;
  sizes: string;
  backends: string;
  peers: string;
  repeat: string;
  threads: string;
  slowRepeat: string;
  slowCells: string;
  budgetMin: string;
  seed: string;
  cacheDir: string;
  outDir: string;
}): Promise<void> {
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(s + "\n");
  // "auto": cpu, plus webgpu when an adapter is found (checked below, before any run).
  const auto = opts.backends === "auto";
  const backends = (auto ? ["cpu", "webgpu"] : opts.backends.split(",").filter(Boolean)) as Backend[];
  for (const b of backends) if (b !== "cpu" && b !== "webgpu") throw new Error(`unknown backend '${b}' (cpu, webgpu)`);
  const peers = opts.peers.split(",").filter((p) => p && p !== "none");
  for (const p of peers) if (p !== "scranjs") throw new Error(`unknown peer '${p}' (scranjs, none)`);
  const repeat = Math.max(1, Number(opts.repeat));
  const threads = Number(opts.threads);
  const budgetMs = Number(opts.budgetMin) * 60_000;

  const all = referenceDatasets();
  const wanted = opts.datasets === "all" ? all.map((d) => d.name) : opts.datasets.split(",").filter(Boolean);
  const datasets: BenchDataset[] = [];
  for (const w of wanted) {
    const d = all.find((x) => x.name === w);
    if (!d) throw new Error(`unknown dataset '${w}'; datasets with a scanpy_like reference: ${all.map((x) => x.name).join(", ")}`);
    datasets.push(d);
  }
  for (const s of opts.sizes.split(",").filter(Boolean)) {
    datasets.push(await simulatedDataset(parseSize(s), Number(opts.seed), opts.cacheDir, log));
  }
  const { name: adapter, info: adapterInfo, ceiling } = await adapterAndCeiling(backends, log);
  if (auto && adapter === "no-adapter") {
    backends.splice(backends.indexOf("webgpu"), 1);
    log("--backends auto: no WebGPU adapter, so the cpu backend only (bash scripts/setup-webgpu.sh installs the software one)");
  }

  const tmp = mkdtempSync(join(tmpdir(), "cellgpu-bench-"));
  const cg = new Map<string, ChildResult[]>(); // `${dataset}\u0000${backend}` → runs
  const pr = new Map<string, (PeerResult | { error: string })[]>();
  const lastMs = new Map<string, number>(); // `${dataset}\u0000${backend or peer}` → its last run's wall time
  const notes = new Map<string, string>(); // same key → why it ran fewer repeats than asked
  const cellsIn = new Map(datasets.map((d) => [d.name, d.simulated?.nCells ?? countCells(d.dir)] as [string, number]));
  const slowGpu = adapterInfo?.isFallbackAdapter === true || adapterInfo?.architecture === "software";
  const slowCells = parseSize(opts.slowCells);
  const slowRepeat = Math.max(1, Number(opts.slowRepeat));
  /** Repeats asked of a backend on a dataset: fewer for webgpu on a software adapter at ≥ slowCells cells. */
  const wantRepeats = (ds: BenchDataset, who: string): number => {
    if (who === "webgpu" && slowGpu && cellsIn.get(ds.name)! >= slowCells && slowRepeat < repeat) {
      notes.set(`${ds.name}\u0000${who}`, `software adapter, ≥ ${opts.slowCells} cells: ${slowRepeat} repeat(s) by policy (--slow-repeat)`);
      return slowRepeat;
    }
    return repeat;
  };
  const est = estimateSeconds(datasets.map((d) => cellsIn.get(d.name)!), backends, peers.length > 0, slowGpu);
  const firstRound = est.reduce((a, e) => a + e.rest + e.gpu, 0);
  const gpuRepeats = (n: number) => (slowGpu && n >= slowCells ? Math.min(repeat, slowRepeat) : repeat);
  const allRounds = est.reduce((a, e) => a + e.rest * repeat + e.gpu * gpuRepeats(e.cells), 0);
  log(
    `estimated run time: first repeat of every dataset ≈ ${(firstRound / 60).toFixed(1)} min, all ${repeat} repeats ≈ ${(allRounds / 60).toFixed(1)} min; ` +
      `repeats after the first are skipped past the ${opts.budgetMin}-minute budget, so expect ≈ ${(Math.max(firstRound, Math.min(allRounds, budgetMs / 1000)) / 60).toFixed(1)} min ` +
      `(a model fitted on the 2-core VM: ${est.map((e) => `${e.name} ${(e.rest + e.gpu).toFixed(0)} s`).join(", ")} per first repeat${slowGpu ? "; software adapter" : ""}).`,
  );
  // Round-robin over datasets so every dataset gets its first repeat before any gets a second;
  // a later repeat of one backend (or the peer) is skipped when its last run would end past the budget.
  for (let r = 0; r < repeat; r++) {
    for (const ds of datasets) {
      const due = (who: string): boolean => {
        const key = `${ds.name}\u0000${who}`;
        if (r >= wantRepeats(ds, who)) return false;
        if (r > 0 && performance.now() - t0 + (lastMs.get(key) ?? 0) > budgetMs) {
          log(`${ds.name}: ${who} repeat ${r + 1} skipped (would pass the ${opts.budgetMin}-minute budget)`);
          notes.set(key, `budget: repeats after ${r} skipped (--budget-min ${opts.budgetMin})`);
          return false;
        }
        return true;
      };
      for (const b of backends) {
        if (!due(b)) continue;
        log(`${ds.name}: cellgpu ${b}, repeat ${r + 1}/${wantRepeats(ds, b)} …`);
        const tr = performance.now();
        const res = await runCellgpu(ds, b, r === 0, tmp);
        if (res.error) log(`  failed: ${res.error}`);
        else log(`  ${((performance.now() - tr) / 1000).toFixed(1)} s: ${stepSummary(res)}`);
        const key = `${ds.name}\u0000${b}`;
        lastMs.set(key, performance.now() - tr);
        cg.set(key, [...(cg.get(key) ?? []), res]);
      }
      for (const p of peers) {
        if (!due(p)) continue;
        log(`${ds.name}: ${p} (${threads} threads), repeat ${r + 1}/${repeat} …`);
        const tr = performance.now();
        const n = cg.get(`${ds.name}\u0000${backends[0]}`)?.[0]?.shapes?.nCells ?? 0;
        const res = await runScranjs(ds, threads, n > 10_000 ? 200 : 500);
        if ("error" in res) log(`  failed: ${res.error}`);
        else log(`  ${((performance.now() - tr) / 1000).toFixed(1)} s`);
        lastMs.set(`${ds.name}\u0000${p}`, performance.now() - tr);
        pr.set(ds.name, [...(pr.get(ds.name) ?? []), res]);
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });

  const reports: DatasetReport[] = [];
  for (const ds of datasets) {
    log(`${ds.name}: accuracy …`);
    const rep: DatasetReport = {
      name: ds.name,
      dir: ds.dir,
      repeats: 0,
      repeatsBy: {},
      repeatNotes: {},
      timings: {},
      ranOn: {},
      ratios: {},
      recorded: {
        scanpy_like: recordedTimings(ds.refDir, "scanpy_like"),
        seurat: recordedTimings(ds.seuratDir, "seurat"),
        note: "recorded on another run (../shared/reference/<dataset>/*/timings.tsv, same 2-core machine type, other load); seurat neighbors_knn = kNN + SNN graph, leiden = Louvain",
      },
      accuracy: {},
      peakRssMiB: {},
      deviceMiB: {},
      work: {},
      errors: [],
    };
    const ref = ds.refDir ? loadReference(ds.refDir) : undefined;
    const firstOutputs = new Map<Backend, Comparable>();
    for (const b of backends) {
      const runs = cg.get(`${ds.name}\u0000${b}`) ?? [];
      const ok = runs.filter((x) => !x.error);
      for (const x of runs) if (x.error) rep.errors.push(`cellgpu ${b}: ${x.error}`);
      if (ok.length === 0) continue;
      rep.repeats = Math.max(rep.repeats, ok.length);
      rep.repeatsBy[b] = ok.length;
      const note = notes.get(`${ds.name}\u0000${b}`);
      if (note) rep.repeatNotes[b] = note;
      const stepMs = (x: ChildResult, step: string) =>
        step === "read" ? x.readMs : x.steps.filter((s) => s.step === step).reduce((a, s) => a + s.ms, 0);
      for (const step of STEPS) {
        const vals = ok.map((x) => stepMs(x, step));
        (rep.timings[step] ??= {})[b] = { median: median(vals), runs: vals };
        if (step !== "read") (rep.ranOn[step] ??= {})[b] = [...new Set(ok[0].steps.filter((x) => x.step === step).map((x) => x.backend))].join("+");
      }
      const totals = ok.map((x) => x.steps.reduce((a, s) => a + s.ms, 0));
      (rep.timings.total ??= {})[b] = { median: median(totals), runs: totals };
      const withRead = ok.map((x, i) => totals[i] + x.readMs);
      (rep.timings.total_with_read ??= {})[b] = { median: median(withRead), runs: withRead };
      rep.peakRssMiB[b] = Math.max(...ok.map((x) => x.maxRssMiB));
      const dm = ok.map((x) => x.deviceMemory).filter((x) => x !== undefined);
      if (dm.length) {
        rep.deviceMiB[b] = {
          peakLive: Math.max(...dm.map((x) => x.peakLiveBytes)) / 2 ** 20,
          requested: Math.max(...dm.map((x) => x.requestedBytes)) / 2 ** 20,
          buffers: Math.max(...dm.map((x) => x.buffers)),
        };
      }
      const s = ok[0].shapes;
      rep.nCells = s.nCells;
      rep.nGenes = s.nGenes;
      rep.nClusters = s.nClusters;
      rep.work[b] = {};
      for (const step of STEPS.slice(1)) {
        const w = stepWork(step, s);
        const ms = rep.timings[step][b].median;
        const GBps = w.bytes === null ? null : w.bytes / (ms * 1e6);
        const GFLOPps = w.flops === null ? null : w.flops / (ms * 1e6);
        const onDevice = b === "webgpu" && ok[0].steps.some((x) => x.step === step && x.backend === "webgpu");
        rep.work[b][step] = {
          ...w,
          GBps,
          GFLOPps,
          ...(onDevice ? { pctCopy: pctOf(GBps, ceiling?.copyGBps), pctMatmul: pctOf(GFLOPps, ceiling?.matmulGflops) } : {}),
        };
      }
      const backendsRan = new Set(ok[0].steps.map((x) => x.backend));
      const o = ok[0].outputs;
      if (!o) continue;
      firstOutputs.set(b, o);
      const acc: DatasetReport["accuracy"][string] = ref ? compare(o, ref) : {};
      if (ds.labels) {
        acc.ari_labels = labelAri(o, ds.labels.path, ds.labels.column);
        acc.labels = ds.labels.what;
      }
      acc.umap_trustworthiness = umapTrust(o);
      rep.accuracy[b] = acc;
      if (b === "webgpu" && !backendsRan.has("webgpu")) rep.errors.push("webgpu requested but every step ran on the CPU");
    }
    const cpuOut = firstOutputs.get("cpu");
    const gpuOut = firstOutputs.get("webgpu");
    if (cpuOut && gpuOut) rep.backendAgreement = compare(gpuOut, cpuOut);

    const peerRuns = pr.get(ds.name) ?? [];
    const peerOk = peerRuns.filter((x): x is PeerResult => !("error" in x));
    for (const x of peerRuns) if ("error" in x) rep.errors.push(`scran.js: ${x.error}`);
    if (peerOk.length > 0) {
      rep.repeats = Math.max(rep.repeats, peerOk.length);
      rep.repeatsBy["scran.js"] = peerOk.length;
      const note = notes.get(`${ds.name}\u0000scranjs`);
      if (note) rep.repeatNotes["scran.js"] = note;
      const t: Record<string, { median: number; runs: number[] }> = {};
      for (const step of STEPS) {
        const vals = peerOk.map((x) => x.steps[step]).filter((v) => v !== undefined);
        if (vals.length) t[step] = { median: median(vals), runs: vals };
      }
      const totals = peerOk.map((x) => STEPS.slice(1).reduce((a, st) => a + (x.steps[st] ?? 0), 0));
      t.total = { median: median(totals), runs: totals };
      const withRead = peerOk.map((x, i) => totals[i] + x.steps.read);
      t.total_with_read = { median: median(withRead), runs: withRead };
      rep.peer = { name: "scran.js 4.0.9", threads, nCells: peerOk[0].nCells, timings: t, maxRssMiB: Math.max(...peerOk.map((x) => x.maxRssMiB)) };
      for (const b of backends) {
        for (const step of [...STEPS, "total", "total_with_read"]) {
          const mine = rep.timings[step]?.[b]?.median;
          const theirs = t[step]?.median;
          if (mine !== undefined && theirs !== undefined) (rep.ratios[step] ??= {})[b] = mine / theirs;
        }
      }
    }
    reports.push(rep);
  }

  const date = new Date().toISOString().slice(0, 10);
  const machine = { host: hostname(), cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version, adapter, adapterInfo };
  const json = {
    date: new Date().toISOString(),
    machine,
    args: opts,
    backends,
    peers: peers.map((p) => ({ name: p, version: "4.0.9", threads })),
    gpuCeiling: ceiling,
    workModel: "bench/work.ts: bytes and FLOPs counted from shapes (a model, not hardware counters); rates = model / median ms",
    wallSeconds: (performance.now() - t0) / 1000,
    datasets: reports,
  };
  mkdirSync(opts.outDir, { recursive: true });
  const outPath = join(opts.outDir, `${date}-${slug(machine.host)}-${slug(adapter)}.json`);
  writeFileSync(outPath, JSON.stringify(json, null, 1) + "\n");
  process.stdout.write(markdown(json.machine, backends, threads, reports, json.wallSeconds, ceiling));
  log(`wrote ${outPath}`);
}

const f = (x: number | undefined | null, d = 0): string => (x === undefined || x === null || !Number.isFinite(x) ? "–" : x.toFixed(d));

function markdown(
  machine: { host: string; cpu: string; cores: number; node: string; adapter: string; adapterInfo?: GpuAdapterInfo },
  backends: Backend[],
  threads: number,
  reports: DatasetReport[],
  wall: number,
  ceiling: GpuCeiling | null,
): string {
  const out: string[] = [];
  out.push(`Machine: ${machine.host}, ${machine.cores} × ${machine.cpu}, Node ${machine.node}, adapter: ${machine.adapter}. Wall time ${f(wall)} s.`);
  const ai = machine.adapterInfo;
  if (ai) out.push(`WebGPU adapter: vendor ${ai.vendor || "?"}, architecture ${ai.architecture || "?"}, description ${ai.description || "?"}, fallback adapter ${ai.isFallbackAdapter}.`);
  if (ceiling) out.push(ceilingLine(ceiling) + " `% ceil.` columns divide a WebGPU step's model rate by these (whole-step wall time, host work and transfers included).");
  out.push(`Times are medians over the n repeats in each column header (n=1: a single run, no median) in ms; scran.js 4.0.9 with ${threads} threads in the same run (child process per repeat, alternating).`);
  out.push("scanpy_like / Seurat columns: recorded on another run (../shared/reference), shown for scale only.");
  out.push("A step shown as `ms (cpu)` under webgpu fell back to / has no GPU twin and ran on the CPU. GB/s and GFLOP/s: bench/work.ts model counts ÷ median time.");
  out.push("");
  for (const r of reports) {
    const nOf = (who: string) => `n=${r.repeatsBy[who] ?? 0}`;
    out.push(`### ${r.name} — ${r.nCells ?? "?"} cells × ${r.nGenes ?? "?"} genes after QC, ${r.nClusters ?? "?"} clusters; repeats ${Object.entries(r.repeatsBy).map(([b, n]) => `${b} n=${n}`).join(", ")}`);
    out.push("");
    for (const [b, why] of Object.entries(r.repeatNotes)) out.push(`${b}: ${why}. `);
    if (Object.keys(r.repeatNotes).length) out.push("");
    const gpuCols = backends.includes("webgpu") && ceiling ? ["webgpu % ceil. copy · matmul"] : [];
    const hdr = ["step", ...backends.map((b) => `${b} ms (${nOf(b)})`), ...(r.peer ? [`scran.js ms (${r.peer.threads} thr, ${nOf("scran.js")})`, ...backends.map((b) => `${b}/scran.js`)] : []), "scanpy_like ms (rec.)", "seurat ms (rec.)", ...backends.map((b) => `${b} GB/s · GFLOP/s (model)`), ...gpuCols];
    out.push(`| ${hdr.join(" | ")} |`);
    out.push(`|${hdr.map(() => "---").join("|")}|`);
    for (const step of [...STEPS, "total", "total_with_read"]) {
      const row = [step];
      for (const b of backends) {
        const on = r.ranOn[step]?.[b];
        row.push(f(r.timings[step]?.[b]?.median) + (on && on !== b ? ` (${on})` : ""));
      }
      if (r.peer) {
        row.push(f(r.peer.timings[step]?.median));
        for (const b of backends) row.push(f(r.ratios[step]?.[b], 2));
      }
      const recStep = step === "total_with_read" ? undefined : step;
      row.push(recStep ? f(r.recorded.scanpy_like?.[recStep]) : "–", recStep ? f(r.recorded.seurat?.[recStep]) : "–");
      for (const b of backends) {
        const w = r.work[b]?.[step];
        row.push(w && (w.GBps !== null || w.GFLOPps !== null) ? `${f(w.GBps, 2)} · ${f(w.GFLOPps, 2)}` : "–");
      }
      if (gpuCols.length) {
        const w = r.work.webgpu?.[step];
        row.push(w?.pctCopy != null || w?.pctMatmul != null ? `${f(w?.pctCopy, 1)}% · ${f(w?.pctMatmul, 1)}%` : "–");
      }
      out.push(`| ${row.join(" | ")} |`);
    }
    out.push("");
    const ah = ["backend", "HVG Jaccard", "PC1–10 subspace", "kNN@15 recall", "ARI vs ref", "ARI vs labels", "UMAP trust.", "top-25 markers", "peak RSS MiB"];
    out.push(`| ${ah.join(" | ")} |`);
    out.push(`|${ah.map(() => "---").join("|")}|`);
    for (const b of backends) {
      const a = r.accuracy[b];
      if (!a) continue;
      const lab = a.ari_labels === undefined ? "–" : `${f(a.ari_labels, 3)} (${a.labels})`;
      out.push(`| ${b} | ${f(a.hvg_jaccard, 3)} | ${f(a.pc10_subspace, 4)} | ${f(a.knn15_recall, 3)} | ${f(a.ari_clusters, 3)} | ${lab} | ${f(a.umap_trustworthiness, 3)} | ${f(a.marker_top25_overlap, 2)} | ${f(r.peakRssMiB[b])} |`);
    }
    if (r.peer) out.push(`| scran.js | | | | | | | | ${f(r.peer.maxRssMiB)} |`);
    if (r.backendAgreement) {
      const a = r.backendAgreement;
      out.push(`| webgpu vs cpu | ${f(a.hvg_jaccard, 3)} | ${f(a.pc10_subspace, 4)} | ${f(a.knn15_recall, 3)} | ${f(a.ari_clusters, 3)} | | | ${f(a.marker_top25_overlap, 2)} | |`);
    }
    for (const [b, d] of Object.entries(r.deviceMiB)) {
      out.push(`\nPeak device memory requested (${b}): ${f(d.peakLive, 1)} MiB live at once, ${f(d.requested, 1)} MiB in ${d.buffers} buffers over the run (Gpu.createBuffer sizes).`);
    }
    for (const e of r.errors) out.push(`\n> ${e}`);
    out.push("");
  }
  return out.join("\n") + "\n";
}

const program = new Command("bench").description("cellgpu benchmark suite");
program
  .command("run", { isDefault: true })
  .description("time and check cellgpu against peers and reference outputs")
  .option("--datasets <list>", "comma-separated reference datasets, or 'all'", "all")
  .option("--sizes <list>", "simulated sizes, e.g. 10k,50k", "")
  .option("--backends <list>", "cpu, webgpu, cpu,webgpu, or auto (cpu, plus webgpu when an adapter is found)", "auto")
  .option("--peers <list>", "scranjs or none", "scranjs")
  .option("--repeat <n>", "repeats per dataset (median reported)", "3")
  .option("--threads <n>", "scran.js threads", "2")
  .option("--slow-repeat <n>", "repeats of the webgpu backend on a software (fallback) adapter for datasets of ≥ --slow-cells cells", "1")
  .option("--slow-cells <n>", "cell count from which --slow-repeat applies", "50k")
  .option("--budget-min <m>", "skip repeats after the first that would end past this many minutes from the start", "13")
  .option("--seed <n>", "simulator seed", "1")
  .option("--cache-dir <dir>", "where simulated datasets are kept", join(tmpdir(), "cellgpu-bench-sim"))
  .option("--out-dir <dir>", "where the JSON result goes", "bench/results")
  .action(bench);
program
  .command("simulate")
  .description("write a simulated 10x MTX directory (negative-binomial counts, pbmc3k gene parameters)")
  .requiredOption("--cells <n>", "number of cells (e.g. 50000 or 50k)")
  .requiredOption("--out <dir>", "output directory")
  .option("--seed <n>", "seed", "1")
  .option("--clusters <n>", "number of clusters", "8")
  .action(async (o: { cells: string; out: string; seed: string; clusters: string }) => {
    const t = performance.now();
    const s = await simulateTenx({ nCells: parseSize(o.cells), outDir: o.out, seed: Number(o.seed), nClusters: Number(o.clusters) });
    console.log(`${s.nCells} cells × ${s.nGenes} genes, ${s.nnz} nonzeros, cluster sizes ${s.clusterSizes.join(" ")}; ${((performance.now() - t) / 1000).toFixed(1)} s → ${o.out}`);
  });
program
  .command("fit-sim <dir>")
  .description(`re-estimate the simulator's gene parameters from a 10x directory (writes src/sim/${PARAMS_FILE})`)
  .option("--out <path>", "output file", join("src/sim", PARAMS_FILE))
  .action((dir: string, o: { out: string }) => {
    const cm = readTenxMtxDir(dir);
    cm.source = dir.split("/").filter(Boolean).pop() ?? dir;
    const p = fitSimParams(cm);
    writeSimParams(p, o.out);
    console.log(`${p.geneIds.length} genes, ln library size ${p.libLogMean.toFixed(3)} ± ${p.libLogSd.toFixed(3)} → ${o.out}`);
  });
program
  .command("steps")
  .description("normalize + HVG + PCA only, CPU vs WebGPU, on a 10x directory and simulated sizes (up to 1M cells)")
  .option("--dir <dir>", "a 10x directory to time first (min_genes 200, min_cells 3)")
  .option("--cells <list>", "simulated sizes, e.g. 200k,1M", "")
  .option("--genes <n>", "genes in the simulated matrices", "4000")
  .option("--hvgs <n>", "highly variable genes kept for PCA", "2000")
  .option("--n-comps <n>", "principal components", "50")
  .option("--backends <list>", "cpu,webgpu", "cpu,webgpu")
  .option("--cpu-max-cells <n>", "skip the CPU baseline above this many cells", "200k")
  .option("--no-ceiling", "skip the device ceiling measurement")
  .option("--seed <n>", "seed", "1")
  .option("--out <file>", "JSON result")
  .action(async (o: { dir?: string; cells: string; genes: string; hvgs: string; nComps: string; backends: string; cpuMaxCells: string; ceiling: boolean; seed: string; out?: string }) => {
    const { runSteps, stepsMarkdown } = await import("./steps.js");
    const t0 = performance.now();
    const backends = o.backends.split(",").filter(Boolean) as ("cpu" | "webgpu")[];
    const r = await runSteps({
      dir: o.dir,
      sizes: o.cells.split(",").filter(Boolean).map(parseSize),
      genes: Number(o.genes),
      hvgs: Number(o.hvgs),
      nComps: Number(o.nComps),
      backends,
      cpuMaxCells: parseSize(o.cpuMaxCells),
      seed: Number(o.seed),
      ceiling: o.ceiling,
      log: (m) => process.stderr.write(m + "\n"),
    });
    const machine = { host: hostname(), cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, node: process.version };
    const md = stepsMarkdown(r.rows);
    process.stdout.write(md);
    if (o.out) {
      mkdirSync(dirname(o.out), { recursive: true });
      writeFileSync(o.out, JSON.stringify({ date: new Date().toISOString(), machine, args: o, ...r, wallSeconds: (performance.now() - t0) / 1000, markdown: md }, null, 1) + "\n");
      process.stderr.write(`wrote ${o.out}\n`);
    }
  });
program
  .command("graph")
  .description("the graph steps (kNN, connectivities, Leiden, SNN + Louvain, UMAP) on the device vs the CPU, on n simulated 50-d points (bench/graphDevice.ts)")
  .option("--cells <n>", "points, e.g. 200k or 1M", "200k")
  .option("--repeats <n>", "device runs per step (default 1 above 200k cells, else 3)")
  .option("--cpu-repeats <n>", "CPU twin runs per step", "1")
  .option("--cpu-max-cells <n>", "skip the CPU twins above this many cells", "50k")
  .option("--recall-queries <n>", "queries of the brute-force recall sample", "1000")
  .option("--deadline-s <s>", "start no step (or repeat) that would end after this many seconds from process start", "Infinity")
  .option("--exact-max-s <s>", "above 50k cells, skip the device exact kNN when its estimate exceeds this", "60")
  .option("--estimate-from <file>", "an earlier graph JSON whose exact-kNN time, scaled by (n/n0)^2, is the estimate")
  .option("--seed <n>", "seed of the points", "1")
  .option("--out <file>", "JSON result, rewritten after every step")
  .option("--profile", "time each kernel on the device (timestamp queries) and print per-step kernel tables")
  .action(async (o: { cells: string; repeats?: string; cpuRepeats: string; cpuMaxCells: string; recallQueries: string; deadlineS: string; exactMaxS: string; estimateFrom?: string; seed: string; out?: string; profile?: boolean }) => {
    const { runGraph } = await import("./graphDevice.js");
    const n = parseSize(o.cells);
    const r = await runGraph({
      n,
      repeats: Number(o.repeats ?? (n > 200_000 ? 1 : 3)),
      cpuRepeats: Number(o.cpuRepeats),
      cpuMaxCells: parseSize(o.cpuMaxCells),
      recallQueries: Number(o.recallQueries),
      deadlineS: Number(o.deadlineS),
      exactMaxS: Number(o.exactMaxS),
      estimateFrom: o.estimateFrom,
      seed: Number(o.seed),
      out: o.out,
      profile: o.profile ?? false,
      log: (m) => process.stderr.write(m + "\n"),
    });
    process.stdout.write(r.markdown ?? "");
    if (o.out) process.stderr.write(`wrote ${o.out}\n`);
  });
program
  .command("adapter")
  .description("print the WebGPU adapter (vendor, architecture, description, fallback flag) and limits as JSON")
  .action(async () => {
    const { acquireGpu } = await import("../src/gpu/device.js");
    const gpu = await acquireGpu();
    console.log(JSON.stringify({ info: gpu.info, limits: gpu.limits }));
    gpu.destroy();
  });
program
  .command("child", { hidden: true })
  .requiredOption("--request <file>")
  .action(async (o: { request: string }) => {
    await runChild(JSON.parse(readFileSync(o.request, "utf8")) as ChildRequest);
  });

await program.parseAsync(process.argv);
