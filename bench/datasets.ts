/**
 * The bench's datasets: every 10x MTX dataset under ../shared/datasets with a scanpy_like
 * reference under ../shared/reference (QC thresholds from that reference's info.tsv, labels where
 * the dataset has them), plus simulated sizes generated once into a cache directory.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { simulateTenx } from "../src/sim/simulate.js";

export const sharedDir = process.env.CELLGPU_SHARED ?? resolve(process.cwd(), "../shared");

export interface BenchDataset {
  /** Name as given to --datasets (e.g. pbmc3k, pbmc_1k_three_chemistries/v2_3prime, sim50k). */
  name: string;
  dir: string;
  /** scanpy_like reference folder, absent for simulated data. */
  refDir?: string;
  /** Other recorded tools' folders (seurat) for their timings. */
  seuratDir?: string;
  minGenes: number;
  minCells: number;
  maxGenes?: number;
  maxPctMt?: number;
  /** barcode → label file and column, where the dataset has labels (or the simulator's truth). */
  labels?: { path: string; column: string; what: string };
  simulated?: { nCells: number; seed: number };
}

export interface Tsv {
  header: string[];
  rows: string[][];
  col(name: string): string[];
}

export function readTsv(path: string): Tsv {
  let buf = readFileSync(path);
  if (path.endsWith(".gz")) buf = gunzipSync(buf);
  const lines = buf.toString("utf8").split(/\r?\n/).filter((l) => l.length > 0);
  const header = lines[0].split("\t");
  const rows = lines.slice(1).map((l) => l.split("\t"));
  return {
    header,
    rows,
    col(name) {
      const i = header.indexOf(name);
      if (i < 0) throw new Error(`${path}: no column ${name} (have ${header.join(", ")})`);
      return rows.map((r) => r[i]);
    },
  };
}

function infoMap(path: string): Map<string, string> {
  return new Map(readTsv(path).rows.map((r) => [r[0], r[1]] as [string, string]));
}

const num = (s: string | undefined): number | undefined => {
  if (s === undefined || s === "None" || s === "") return undefined;
  const x = Number(s);
  return Number.isFinite(x) ? x : undefined;
};

function findLabels(dir: string): BenchDataset["labels"] {
  for (const [file, column, what] of [
    ["labels_seurat_tutorial.tsv", "cell_type", "cell_type"],
    ["labels.tsv", "cell_type", "cell_type"],
    ["truth.tsv.gz", "group", "truth"],
    ["truth.tsv", "cluster", "truth"],
  ] as const) {
    const p = join(dir, file);
    if (existsSync(p) && readTsv(p).header.includes(column)) return { path: p, column, what };
  }
  return undefined;
}

/** Datasets with a scanpy_like reference, by name (sub-folders joined with "/"). */
export function referenceDatasets(): BenchDataset[] {
  const refRoot = join(sharedDir, "reference");
  const out: BenchDataset[] = [];
  const visit = (rel: string) => {
    const refDir = join(refRoot, rel, "scanpy_like");
    if (existsSync(join(refDir, "info.tsv"))) {
      let dir = join(sharedDir, "datasets", rel);
      if (!existsSync(join(dir, "barcodes.tsv.gz"))) dir = join(refRoot, rel, "input");
      if (!existsSync(dir)) return;
      const info = infoMap(join(refDir, "info.tsv"));
      out.push({
        name: rel,
        dir,
        refDir,
        seuratDir: existsSync(join(refRoot, rel, "seurat")) ? join(refRoot, rel, "seurat") : undefined,
        minGenes: num(info.get("min_genes")) ?? 200,
        minCells: num(info.get("min_cells")) ?? 3,
        maxGenes: num(info.get("max_genes")),
        maxPctMt: num(info.get("max_pct_mt")),
        labels: findLabels(dir),
      });
      return;
    }
    for (const e of readdirSync(join(refRoot, rel), { withFileTypes: true })) {
      if (e.isDirectory() && !["seurat", "scranjs", "logs", "input"].includes(e.name)) visit(rel ? `${rel}/${e.name}` : e.name);
    }
  };
  for (const e of readdirSync(refRoot, { withFileTypes: true })) if (e.isDirectory()) visit(e.name);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** "50k" → 50000, "1M" → 1000000, "2500" → 2500. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (expected e.g. 10k, 50k, 1M or a number)`);
  const mult = m[2] === "" ? 1 : m[2].toLowerCase() === "k" ? 1e3 : 1e6;
  return Math.round(Number(m[1]) * mult);
}

export function sizeName(n: number): string {
  return n % 1_000_000 === 0 ? `${n / 1e6}M` : n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

/** A simulated dataset, generated into cacheDir unless already there (same size and seed). */
export async function simulatedDataset(nCells: number, seed: number, cacheDir: string, log: (s: string) => void): Promise<BenchDataset> {
  const dir = join(cacheDir, `sim-v2-${nCells}-seed${seed}`);
  if (!existsSync(join(dir, "truth.tsv"))) {
    const t0 = performance.now();
    log(`simulating ${nCells} cells (seed ${seed}) into ${dir} …`);
    await simulateTenx({ nCells, outDir: dir, seed });
    log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return {
    name: `sim${sizeName(nCells)}`,
    dir,
    minGenes: 200,
    minCells: 3,
    maxGenes: 2500,
    maxPctMt: 5,
    labels: { path: join(dir, "truth.tsv"), column: "cluster", what: "truth" },
    simulated: { nCells, seed },
  };
}

/** Cells (barcodes) in a 10x directory, before QC. */
export function countCells(dir: string): number {
  for (const f of ["barcodes.tsv.gz", "barcodes.tsv"]) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    let buf = readFileSync(p);
    if (f.endsWith(".gz")) buf = gunzipSync(buf);
    return buf.toString("utf8").split("\n").filter((l) => l.length > 0).length;
  }
  return 0;
}
