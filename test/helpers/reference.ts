/** Access to ../shared (datasets and reference outputs) for tests and the bench. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const sharedDir = process.env.CELLGPU_SHARED ?? resolve(repoRoot, "../shared");

export function datasetDir(name: string): string {
  if (name === "pbmc3k") return join(repoRoot, "datasets/pbmc3k");
  return join(sharedDir, "datasets", name);
}

/** The reference outputs; a missing ../shared is a failure naming where it was looked for, never a skip. */
export function referenceDir(dataset: string, tool = "scanpy_like"): string {
  const dir = join(sharedDir, "reference", dataset, tool);
  if (!existsSync(dir)) throw new Error(`reference outputs not found at ${dir} (put shared/ beside the repo or set CELLGPU_SHARED)`);
  return dir;
}


export interface Tsv {
  header: string[];
  rows: string[][];
  col(name: string): string[];
  num(name: string): Float64Array;
}

export function readTsv(path: string): Tsv {
  let buf = readFileSync(path);
  if (path.endsWith(".gz")) buf = gunzipSync(buf);
  const lines = buf.toString("utf8").split(/\r?\n/).filter((l) => l.length > 0);
  const header = lines[0].split("\t");
  const rows = lines.slice(1).map((l) => l.split("\t"));
  const idx = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`${path}: no column ${name} (have ${header.join(", ")})`);
    return i;
  };
  return {
    header,
    rows,
    col: (name) => rows.map((r) => r[idx(name)]),
    num: (name) => Float64Array.from(rows, (r) => Number(r[idx(name)])),
  };
}

/** Row-major numeric matrix of the columns named `${prefix}1..${prefix}k`. */
export function readMatrix(path: string, prefix: string): { n: number; k: number; data: Float64Array; first: string[] } {
  const t = readTsv(path);
  const cols = t.header.map((h, i) => [h, i] as const).filter(([h]) => h.startsWith(prefix));
  const k = cols.length;
  const data = new Float64Array(t.rows.length * k);
  t.rows.forEach((r, i) => cols.forEach(([, c], j) => (data[i * k + j] = Number(r[c]))));
  return { n: t.rows.length, k, data, first: t.rows.map((r) => r[0]) };
}
