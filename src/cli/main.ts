/**
 * cellgpu command line: `cellgpu analyze <input> --out <dir>`. Options are scanpy's parameter
 * names in kebab-case. Errors in the input are one line on stderr and exit code 1.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { acquireGpu, type Gpu, type GpuAdapterInfo } from "../gpu/device.js";
import { InputError } from "../io/errors.js";
import { readInputCounts } from "../io/read.js";
import { analyze, PipelineError, type StepRecord } from "../pipeline/analyze.js";
import { DirStepCache } from "../pipeline/cache.js";
import { writeOutputDir } from "../pipeline/output.js";
import { presetDefaults, type AnalyzeParams } from "../pipeline/params.js";
import { readGroupsFile } from "../pipeline/groups.js";
import { defaultMaxMemory, parseBytes } from "../pipeline/plan.js";

const VERSION = "0.1.0";

const num = (name: string, { int = false, min = -Infinity } = {}) => (v: string) => {
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x)) || x < min) {
    throw new InvalidArgumentError(`${name} expects ${int ? "an integer" : "a number"}${min > -Infinity ? ` >= ${min}` : ""}, got '${v}'`);
  }
  return x;
};

const bytesOpt = (name: string) => (v: string) => {
  const b = parseBytes(v);
  if (b === undefined) throw new InvalidArgumentError(`${name} expects a size such as 512M, 12G or a byte count, got '${v}'`);
  return b;
};

function formatTable(steps: StepRecord[], totalMs: number): string {
  const rows = steps.map((s) => [s.step, s.ms.toFixed(1), s.cached ? `${s.backend} (cached)` : s.backend]);
  rows.push(["total", totalMs.toFixed(1), ""]);
  const w = [Math.max(4, ...rows.map((r) => r[0].length)), Math.max(7, ...rows.map((r) => r[1].length)), Math.max(7, ...rows.map((r) => r[2].length))];
  const line = (r: string[]) => `| ${r[0].padEnd(w[0])} | ${r[1].padStart(w[1])} | ${r[2].padEnd(w[2])} |`;
  return [line(["step", "wall ms", "backend"]), `|${"-".repeat(w[0] + 2)}|${"-".repeat(w[1] + 2)}|${"-".repeat(w[2] + 2)}|`, ...rows.map(line)].join("\n");
}

/**
 * auto: a hardware WebGPU adapter if there is one, else the CPU (a software adapter such as
 * lavapipe runs these kernels slower than the CPU twins). webgpu: any adapter, or an error.
 */
async function chooseDevice(backend: string, notice: (m: string) => void, maxDeviceMemory?: number): Promise<{ gpu?: Gpu; adapter?: GpuAdapterInfo }> {
  if (backend === "cpu") return {};
  let gpu: Gpu;
  try {
    // A device budget caps each binding (and so each chunk the ops upload) at a quarter of it.
    const binding = maxDeviceMemory === undefined ? undefined : Math.max(2 ** 20, Math.floor(maxDeviceMemory / 4 / 2 ** 20) * 2 ** 20);
    gpu = await acquireGpu(binding === undefined ? {} : { forceLimits: { maxStorageBufferBindingSize: binding } });
  } catch (e) {
    if (backend === "webgpu") throw new PipelineError(`--backend webgpu: ${(e as Error).message}`);
    notice("no WebGPU adapter found; running on the CPU");
    return {};
  }
  if (backend === "auto" && gpu.info.isFallbackAdapter) {
    notice(`only a software WebGPU adapter (${gpu.info.description || gpu.info.vendor}) found; the CPU twins are faster there, so running on the CPU (--backend webgpu forces it)`);
    const adapter = gpu.info;
    gpu.destroy();
    return { adapter };
  }
  return { gpu, adapter: gpu.info };
}

async function runAnalyze(input: string, o: Record<string, unknown>): Promise<void> {
  const p: AnalyzeParams = presetDefaults(String(o.preset));
  const set = <K extends keyof AnalyzeParams>(key: K, opt: string) => {
    if (o[opt] !== undefined) p[key] = o[opt] as AnalyzeParams[K];
  };
  set("minGenes", "minGenes");
  set("minCells", "minCells");
  set("maxGenes", "maxGenes");
  set("maxPctMt", "maxPctMt");
  set("targetSum", "targetSum");
  set("flavor", "flavor");
  set("nTopGenes", "nTopGenes");
  set("nComps", "nComps");
  set("nPcs", "nPcs");
  set("nNeighbors", "nNeighbors");
  set("knnMethod", "knnMethod");
  set("resolution", "resolution");
  set("minDist", "minDist");
  set("nStarts", "nStarts");
  set("seed", "seed");
  set("markerMethod", "method");
  set("backend", "backend");
  if (o.maxValue !== undefined) p.maxValue = o.maxValue === "none" ? undefined : (o.maxValue as number);
  if (o.tieCorrect) p.tieCorrect = true;
  p.maxMemory = (o.maxMemory as number | undefined) ?? defaultMaxMemory();
  if (o.maxDeviceMemory !== undefined) p.maxDeviceMemory = o.maxDeviceMemory as number;
  if (o.nPcs === undefined && o.nComps !== undefined) p.nPcs = Math.min(p.nPcs, p.nComps);

  const t0 = performance.now();
  const progress = (msg: string) => process.stderr.write(`cellgpu: ${msg}\n`);
  const readStart = performance.now();
  // Compact counts (uint16 where exact): half the memory of a Csr; widened as the plan needs.
  const data = await readInputCounts(input);
  const readMs = performance.now() - readStart;
  const groups = o.groups ? readGroupsFile(String(o.groups), o.groupsColumn as string | undefined) : undefined;
  const { gpu, adapter } = await chooseDevice(p.backend, progress, p.maxDeviceMemory);
  // Ctrl-C stops the run between steps; nothing is written.
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort(new PipelineError("interrupted; no output written")));
  let out;
  try {
    out = await analyze(data, p, {
      gpu,
      cache: o.cache ? new DirStepCache(String(o.cache)) : undefined,
      signal: abort.signal,
      warn: progress,
      groups,
      onStep: (s) => {
        if (s.ms > 1000) progress(`${s.step} done in ${(s.ms / 1000).toFixed(1)} s (${s.backend})`);
        else if (s.cached) progress(`${s.step} taken from the cache`);
      },
    });
  } finally {
    gpu?.destroy();
  }
  const steps: StepRecord[] = [{ step: "read", ms: readMs, backend: "cpu" }, ...out.steps];
  const writeStart = performance.now();
  const summary = {
    cellgpu: VERSION,
    node: process.version,
    input,
    parameters: p,
    backend_requested: p.backend,
    adapter: adapter ?? null,
    cells_in: data.X.nRows,
    genes_in: data.X.nCols,
    cells_kept: out.nCells,
    genes_kept: out.nGenes,
    clusters: out.nClusters,
    knn: { method: out.knnMethod, recall_estimate: out.knnRecallEstimate },
    memory: {
      route: out.memoryPlan.route,
      max_memory_bytes: out.memoryPlan.maxMemory,
      estimated_bytes: out.memoryPlan.estimatedBytes,
      block_nnz: Number.isFinite(out.memoryPlan.blockNnz) ? out.memoryPlan.blockNnz : null,
      max_device_memory_bytes: p.maxDeviceMemory ?? null,
      peak_rss_bytes: 0,
    },
    steps: steps.map((s) => ({ step: s.step, ms: Math.round(s.ms * 10) / 10, backend: s.backend, ...(s.cached ? { cached: true } : {}) })),
    total_ms: 0,
  };
  summary.total_ms = Math.round((performance.now() - t0) * 10) / 10;
  summary.memory.peak_rss_bytes = process.resourceUsage().maxRSS * 1024;
  await writeOutputDir(String(o.out), out, summary);
  steps.push({ step: "write", ms: performance.now() - writeStart, backend: "cpu" });
  process.stdout.write(
    `${out.nCells} cells × ${out.nGenes} genes kept, ${out.nClusters} clusters → ${o.out}\n\n` +
      formatTable(steps, performance.now() - t0) +
      "\n",
  );
}

const program = new Command("cellgpu").version(VERSION).description("single-cell RNA-seq analysis on WebGPU or the CPU");
program
  .command("analyze")
  .argument("<input>", "10x MTX directory, 10x .h5, or .h5ad with raw counts")
  .requiredOption("--out <dir>", "output directory (written atomically)")
  .addOption(new Option("--preset <name>", "parameter preset").choices(["scanpy", "seurat"]).default("scanpy"))
  .addOption(new Option("--backend <name>", "compute backend").choices(["auto", "cpu", "webgpu"]))
  .option("--min-genes <n>", "filter_cells: minimum genes per cell (200)", num("--min-genes", { int: true, min: 0 }))
  .option("--min-cells <n>", "filter_genes: minimum cells per gene (3)", num("--min-cells", { int: true, min: 0 }))
  .option("--max-genes <n>", "keep cells with n_genes_by_counts < n", num("--max-genes", { int: true, min: 1 }))
  .option("--max-pct-mt <x>", "keep cells with pct_counts_mt < x", num("--max-pct-mt", { min: 0 }))
  .option("--target-sum <x>", "normalize_total target (1e4)", num("--target-sum", { min: 1e-12 }))
  .addOption(new Option("--flavor <name>", "highly_variable_genes flavor").choices(["seurat", "cell_ranger", "seurat_v3"]))
  .option("--n-top-genes <n>", "number of HVGs (2000)", num("--n-top-genes", { int: true, min: 1 }))
  .option("--max-value <x>", "scale clip value (10), or 'none'", (v) => (v === "none" ? "none" : num("--max-value", { min: 0 })(v)))
  .option("--n-comps <n>", "PCA components (50)", num("--n-comps", { int: true, min: 1 }))
  .option("--n-pcs <n>", "PCs used for neighbours (all comps; seurat preset 10)", num("--n-pcs", { int: true, min: 1 }))
  .option("--n-neighbors <n>", "neighbours (15; seurat preset 20)", num("--n-neighbors", { int: true, min: 2 }))
  .addOption(
    new Option("--knn-method <name>", "kNN search: exact, approx (IVF on a GPU, NN-descent on the CPU), ivf, auto (exact up to 50,000 cells)").choices([
      "auto",
      "exact",
      "approx",
      "ivf",
    ]),
  )
  .option("--resolution <x>", "clustering resolution (1; seurat preset 0.5)", num("--resolution", { min: 0 }))
  .option("--n-starts <n>", "clustering starts, best modularity kept (1; seurat preset 10)", num("--n-starts", { int: true, min: 1 }))
  .option("--min-dist <x>", "UMAP min_dist (0.5)", num("--min-dist", { min: 0 }))
  .option("--seed <n>", "random seed (0)", num("--seed", { int: true }))
  .addOption(new Option("--method <name>", "rank_genes_groups method").choices(["wilcoxon", "t-test"]))
  .option("--tie-correct", "tie-correct Wilcoxon z-scores")
  .option("--groups <tsv>", "rank genes for these groups: TSV with a header, barcode then group")
  .option("--max-memory <bytes>", "host memory budget, e.g. 12G (default: 80% of this machine's); above it the count steps work in blocks", bytesOpt("--max-memory"))
  .option("--max-device-memory <bytes>", "GPU memory budget, e.g. 2G: no buffer binding larger than a quarter of it", bytesOpt("--max-device-memory"))
  .option("--cache <dir>", "memoize step results here; a re-run recomputes only the steps whose inputs or parameters changed")
  .option("--groups-column <name>", "which column of --groups holds the group (default: the second)")
  .action(async (input: string, o: Record<string, unknown>) => runAnalyze(input, o));

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof InputError || e instanceof PipelineError) {
    process.stderr.write(`cellgpu: error: ${e.message}\n`);
  } else if (process.env.CELLGPU_DEBUG) {
    process.stderr.write(`cellgpu: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  } else {
    process.stderr.write(`cellgpu: internal error: ${(e as Error)?.message ?? String(e)} (set CELLGPU_DEBUG=1 for a stack trace)\n`);
  }
  process.exitCode = 1;
});
