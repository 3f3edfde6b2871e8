/**
 * The graph steps after kNN at scale: connectivities, distances, SNN, Leiden, Louvain, spectral
 * init and UMAP, on a synthetic kNN graph of n cells (k = 15), each step timed in its own child
 * process so that its peak RSS is its own.
 *
 *   npx tsx bench/graph-scale.ts --cells 200000 [--steps conn,dist,snn,leiden,louvain,spectral,umap]
 *
 * The kNN graph: n points from a mixture of 30 anisotropic Gaussians in 3 dimensions (cluster
 * sizes uneven, points in random order, as cells are in a matrix), exact k nearest neighbours
 * found with a k-d tree — O(n log n), seconds at 1M cells. It has the shape of a kNN graph of real
 * data (clusters, uneven density, bridges between touching clusters) without PCA + kNN's cost.
 * Inputs shared by the steps (kNN, connectivities, SNN) are written once under
 * $TMPDIR/cellgpu-graph-scale and read back by each child. Per step the report gives wall ms,
 * the child's RSS once its inputs are loaded, its peak RSS (process.resourceUsage().maxRSS) and
 * the difference (the step's extra memory), and a SHA-256 of the step's output bytes so that two
 * runs (before / after a change) can be checked for identical results.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Csr } from "../src/core/csr.js";
import { Rng } from "../src/core/random.js";
import { fuzzySimplicialSetCpu, knnDistancesCsr, snnGraphCpu } from "../src/ops/connectivities.js";
import type { Knn } from "../src/ops/knn.js";
import { leidenCpu } from "../src/ops/leiden.js";
import { louvainCpu } from "../src/ops/louvain.js";
import { spectralLayoutCpu } from "../src/ops/spectral.js";
import { umapLayoutCpu } from "../src/ops/umap.js";

const K = 15;
const DIM = 3;
const CLUSTERS = 30;
const ALL_STEPS = ["conn", "dist", "snn", "leiden", "louvain", "spectral", "umap"] as const;
type StepName = (typeof ALL_STEPS)[number];

interface StepReport {
  step: StepName;
  ms: number;
  /** User + system CPU time of the step: steadier than wall time on a shared machine. */
  cpuMs: number;
  baseMiB: number;
  peakMiB: number;
  extraMiB: number;
  hash: string;
  note: string;
}

/** Points of a Gaussian mixture: n × DIM float64, row-major. */
function mixturePoints(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const centre = new Float64Array(CLUSTERS * DIM);
  const scale = new Float64Array(CLUSTERS * DIM);
  const weight = new Float64Array(CLUSTERS);
  let total = 0;
  for (let c = 0; c < CLUSTERS; c++) {
    for (let d = 0; d < DIM; d++) {
      centre[c * DIM + d] = rng.nextFloat() * 20;
      scale[c * DIM + d] = 0.3 + rng.nextFloat() * 1.2;
    }
    weight[c] = 0.2 + rng.nextFloat() ** 2 * 3; // sizes differ up to ~15×
    total += weight[c];
  }
  const x = new Float64Array(n * DIM);
  for (let i = 0; i < n; i++) {
    let u = rng.nextFloat() * total;
    let c = 0;
    while (c < CLUSTERS - 1 && u >= weight[c]) u -= weight[c++];
    for (let d = 0; d < DIM; d++) x[i * DIM + d] = centre[c * DIM + d] + scale[c * DIM + d] * rng.normal();
  }
  return x;
}

/** Exact kNN (self first, then by distance) with a k-d tree over the points. */
function kdTreeKnn(x: Float64Array, n: number, k: number): Knn {
  const LEAF = 12;
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  // Implicit tree over perm: node = [lo, hi), split on the widest dimension at the median.
  const nodeLo: number[] = [];
  const nodeHi: number[] = [];
  const nodeDim: number[] = [];
  const nodeVal: number[] = [];
  const left: number[] = [];
  const right: number[] = [];
  const build = (lo: number, hi: number): number => {
    const id = nodeLo.length;
    nodeLo.push(lo);
    nodeHi.push(hi);
    nodeDim.push(-1);
    nodeVal.push(0);
    left.push(-1);
    right.push(-1);
    if (hi - lo <= LEAF) return id;
    let best = 0;
    let bestSpread = -1;
    for (let d = 0; d < DIM; d++) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let t = lo; t < hi; t++) {
        const v = x[perm[t] * DIM + d];
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      }
      if (mx - mn > bestSpread) {
        bestSpread = mx - mn;
        best = d;
      }
    }
    const mid = (lo + hi) >> 1;
    quickselect(perm, lo, hi - 1, mid, (i) => x[i * DIM + best]);
    nodeDim[id] = best;
    nodeVal[id] = x[perm[mid] * DIM + best];
    left[id] = build(lo, mid);
    right[id] = build(mid, hi);
    return id;
  };
  build(0, n);

  const indices = new Int32Array(n * k);
  const distances = new Float32Array(n * k);
  const hd = new Float64Array(k); // sorted ascending squared distances
  const hi = new Int32Array(k);
  const stack = new Int32Array(256);
  const stackD = new Float64Array(256);
  for (let q = 0; q < n; q++) {
    hd.fill(Infinity);
    hi.fill(-1);
    const qx = x[q * DIM];
    const qy = x[q * DIM + 1];
    const qz = x[q * DIM + 2];
    let top = 0;
    stack[top] = 0;
    stackD[top++] = 0;
    while (top > 0) {
      const node = stack[--top];
      if (stackD[top] >= hd[k - 1]) continue;
      const d = nodeDim[node];
      if (d < 0) {
        for (let t = nodeLo[node]; t < nodeHi[node]; t++) {
          const p = perm[t];
          const dx = x[p * DIM] - qx;
          const dy = x[p * DIM + 1] - qy;
          const dz = x[p * DIM + 2] - qz;
          const d2 = dx * dx + dy * dy + dz * dz;
          if (d2 < hd[k - 1] || (d2 === hd[k - 1] && p < hi[k - 1])) {
            let s = k - 1;
            while (s > 0 && (hd[s - 1] > d2 || (hd[s - 1] === d2 && hi[s - 1] > p))) {
              hd[s] = hd[s - 1];
              hi[s] = hi[s - 1];
              s--;
            }
            hd[s] = d2;
            hi[s] = p;
          }
        }
        continue;
      }
      const diff = (d === 0 ? qx : d === 1 ? qy : qz) - nodeVal[node];
      const near = diff < 0 ? left[node] : right[node];
      const far = diff < 0 ? right[node] : left[node];
      stack[top] = far;
      stackD[top++] = diff * diff;
      stack[top] = near;
      stackD[top++] = 0;
    }
    // Self first (distance 0, and the smallest index among exact duplicates is not guaranteed).
    let self = hi.indexOf(q);
    if (self < 0) self = k - 1;
    for (let s = self; s > 0; s--) {
      hi[s] = hi[s - 1];
      hd[s] = hd[s - 1];
    }
    hi[0] = q;
    hd[0] = 0;
    for (let s = 0; s < k; s++) {
      indices[q * k + s] = hi[s];
      distances[q * k + s] = Math.sqrt(hd[s]);
    }
  }
  return { n, k, indices, distances };
}

function quickselect(a: Int32Array, lo: number, hi: number, kth: number, key: (i: number) => number): void {
  while (hi > lo) {
    const pivot = key(a[(lo + hi) >> 1]);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (key(a[i]) < pivot) i++;
      while (key(a[j]) > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (kth <= j) hi = j;
    else if (kth >= i) lo = i;
    else return;
  }
}

// ---- inputs on disk, shared by the children ----

function writeArrays(path: string, arrays: ArrayBufferView[], meta: number[]): void {
  const header = Buffer.from(JSON.stringify({ meta, lens: arrays.map((a) => a.byteLength) }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  writeFileSync(path, Buffer.concat([len, header, ...arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))]));
}

function readArrays(path: string): { meta: number[]; parts: ArrayBuffer[] } {
  const buf = readFileSync(path);
  const hl = buf.readUInt32LE(0);
  const { meta, lens } = JSON.parse(buf.subarray(4, 4 + hl).toString()) as { meta: number[]; lens: number[] };
  let o = 4 + hl;
  const parts = lens.map((l) => {
    const ab = new ArrayBuffer(l);
    new Uint8Array(ab).set(buf.subarray(o, o + l));
    o += l;
    return ab;
  });
  return { meta, parts };
}

const saveCsr = (path: string, g: Csr) => writeArrays(path, [g.indptr, g.indices, g.data], [g.nRows, g.nCols]);
function loadCsr(path: string): Csr {
  const { meta, parts } = readArrays(path);
  return { nRows: meta[0], nCols: meta[1], indptr: new Float64Array(parts[0]), indices: new Uint32Array(parts[1]), data: new Float32Array(parts[2]) };
}
function loadKnn(path: string): Knn {
  const { meta, parts } = readArrays(path);
  return { n: meta[0], k: meta[1], indices: new Int32Array(parts[0]), distances: new Float32Array(parts[1]) };
}

function hashOf(...arrays: ArrayBufferView[]): string {
  const h = createHash("sha256");
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest("hex").slice(0, 16);
}

const mib = (bytes: number) => Math.round(bytes / 1048576);

/** One step in this process; inputs from `dir`, report as JSON on stdout. */
function runChild(step: StepName, dir: string): void {
  const input = step === "leiden" || step === "spectral" || step === "umap" ? "conn" : step === "louvain" ? "snn" : "knn";
  const data = input === "knn" ? loadKnn(join(dir, "knn.bin")) : loadCsr(join(dir, `${input}.bin`));
  global.gc?.();
  const baseMiB = mib(process.memoryUsage().rss);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let hash = "";
  let note = "";
  if (step === "conn" || step === "dist" || step === "snn") {
    const knn = data as Knn;
    const g = step === "conn" ? fuzzySimplicialSetCpu(knn) : step === "dist" ? knnDistancesCsr(knn) : snnGraphCpu(knn, 1 / 15);
    const ms = performance.now() - t0;
    hash = hashOf(g.indptr, g.indices, g.data);
    note = `nnz ${g.indptr[g.nRows]}`;
    if (step !== "dist") saveCsr(join(dir, `${step}.bin`), g);
    report(ms);
    return;
  }
  const g = data as Csr;
  let out: Int32Array | Float32Array | Float64Array;
  if (step === "leiden") out = leidenCpu(g, { resolution: 1, seed: 0 });
  else if (step === "louvain") out = louvainCpu(g, { resolution: 0.8, seed: 0, nStarts: 1 });
  else if (step === "spectral") out = spectralLayoutCpu(g, 2, new Rng(0));
  else out = umapLayoutCpu(g, { minDist: 0.5, spread: 1, seed: 0 });
  const ms = performance.now() - t0;
  hash = hashOf(out);
  if (out instanceof Int32Array) note = `${out.reduce((a, b) => Math.max(a, b), -1) + 1} clusters`;
  report(ms);

  function report(ms: number): void {
    const peakMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    const c = process.cpuUsage(c0);
    const cpuMs = Math.round((c.user + c.system) / 1000);
    const r: StepReport = { step, ms: Math.round(ms), cpuMs, baseMiB, peakMiB, extraMiB: peakMiB - baseMiB, hash, note };
    process.stdout.write(`REPORT ${JSON.stringify(r)}\n`);
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const arg = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dir = arg("dir") ?? join(tmpdir(), "cellgpu-graph-scale");
  const child = arg("child") as StepName | undefined;
  if (child) return runChild(child, dir);

  const n = Number((arg("cells") ?? "200000").replace(/k$/i, "000").replace(/M$/i, "000000"));
  const steps = (arg("steps")?.split(",") ?? [...ALL_STEPS]) as StepName[];
  const self = fileURLToPath(import.meta.url);
  const runDir = join(dir, String(n));
  mkdirSync(runDir, { recursive: true });
  const log = (s: string) => console.log(s);
  if (!existsSync(join(runDir, "knn.bin"))) {
    const t0 = performance.now();
    const x = mixturePoints(n, 42);
    const knn = kdTreeKnn(x, n, K);
    writeArrays(join(runDir, "knn.bin"), [knn.indices, knn.distances], [n, K]);
    log(`kNN of ${n} points (k-d tree, ${DIM}-d mixture of ${CLUSTERS}): ${Math.round(performance.now() - t0)} ms`);
  }
  log(`| step | wall ms | CPU ms | RSS inputs loaded MiB | peak RSS MiB | extra MiB | output sha256 | note |`);
  log(`|---|---:|---:|---:|---:|---:|---|---|`);
  const reports: StepReport[] = [];
  for (const step of steps) {
    const needs = step === "leiden" || step === "spectral" || step === "umap" ? "conn" : step === "louvain" ? "snn" : "knn";
    if (!existsSync(join(runDir, `${needs}.bin`))) throw new Error(`step ${step} needs ${needs}.bin: run step ${needs} first`);
    const r = spawnSync(process.execPath, [...process.execArgv, "--expose-gc", self, "--child", step, "--dir", runDir], {
      encoding: "utf8",
      maxBuffer: 1 << 26,
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("REPORT "));
    if (r.status !== 0 || !line) throw new Error(`step ${step} failed (status ${r.status}):\n${r.stderr.slice(-4000)}`);
    const rep = JSON.parse(line.slice(7)) as StepReport;
    reports.push(rep);
    log(`| ${rep.step} | ${rep.ms} | ${rep.cpuMs} | ${rep.baseMiB} | ${rep.peakMiB} | ${rep.extraMiB} | ${rep.hash} | ${rep.note} |`);
  }
  if (arg("json")) writeFileSync(arg("json")!, JSON.stringify({ n, k: K, reports }, null, 2));
}

main();
