/**
 * Negative-binomial count simulator with cluster structure, written as a 10x MTX directory by
 * streaming cells (memory independent of the number of cells).
 *
 * Model, per cell c in cluster k and gene g:
 *   L_c ~ LogNormal(libLogMean, libLogSd)                    library size (pbmc3k's), or fixed
 *   q_kg = p_g · exp(β_kg) / Σ_g' p_g' exp(β_kg')             gene shares, renormalised per cluster
 *   μ_gc = L_c · q_kg · (m_c for mito genes)                  m_c ~ LogNormal(0, mitoSd)
 *   y_gc ~ Poisson(μ_gc · G_gc),  G_gc: mean 1, variance φ_g  i.e. NB(μ, φ_g) in mean and variance
 * β_kg ≠ 0 on `nDeGenes` genes per cluster drawn from the `dePoolSize` most expressed non-mito
 * genes (|β| = 0.7 + Exp(mean 0.8), up with probability 0.7). Cluster proportions are random
 * (log-normal weights, every cluster ≥ 2 %). `nGenes` beyond the fitted genes adds genes that copy
 * fitted ones' parameters (extendSimParams).
 *
 * Speed (a cell costs O(nGenes + counts), no per-gene random draw):
 * - G_gc is taken from a pool of POOL values for gene g's φ: Gamma(1/φ, φ) draws, power-adjusted
 *   (v ↦ a·v^b) so the pool's mean is exactly 1 and its variance exactly φ — NB's first two
 *   moments hold exactly, the shape is a 256-point approximation of the gamma. The pool index is a
 *   counter-based hash of (the cell's random word, g), not a generator call.
 * - Independent Poisson(λ_g) over all genes = the arrivals of one unit-rate Poisson process on
 *   [0, Σλ) counted in the consecutive intervals of length λ_g (disjoint intervals of a Poisson
 *   process have independent Poisson counts). So one pass over the genes accumulates Σλ and
 *   assigns arrivals (exponential spacings) as it goes: one exponential draw per count.
 * - MTX text is formatted by hand into 1 MiB buffers that gzip (level 1, on the thread pool)
 *   compresses while the next buffer is generated.
 * Deterministic per seed.
 *
 * Output: matrix.mtx.gz (features × cells, entries cell by cell with features ascending),
 * features.tsv.gz, barcodes.tsv.gz, truth.tsv (barcode, cluster). The MTX is two gzip members:
 * a stored (uncompressed) header of fixed length, rewritten in place at the end once the entry
 * count is known (a padding comment line absorbs the count's digits), then the body; gzip
 * readers concatenate members.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { createGzip, gzipSync, type ZlibOptions } from "node:zlib";
import { pipeline } from "node:stream/promises";
import type { TransformOptions, Writable } from "node:stream";
import { defaultSimParams, extendSimParams, type SimParams } from "./params.js";
import { hash32, SimRng } from "./rng.js";

export interface SimulateOptions {
  nCells: number;
  outDir: string;
  seed: number;
  nClusters?: number;
  nDeGenes?: number;
  dePoolSize?: number;
  mitoSd?: number;
  params?: SimParams;
  /** Number of genes (default: the fitted parameters' genes; more adds SIMG genes, fewer is an error). */
  nGenes?: number;
  /** Same library size L for every cell instead of the log-normal (tests: y_g is then exactly NB). */
  libSize?: number;
}

export interface SimulateSummary {
  nCells: number;
  nGenes: number;
  nnz: number;
  totalCounts: number;
  clusterSizes: number[];
}

const POOL_BITS = 8;
const POOL = 1 << POOL_BITS;
/** 16-base barcode from the cell number (base 4, unique up to 4^16 cells) as Cell Ranger writes them. */
function barcode(i: number): string {
  let s = "";
  let x = i;
  for (let j = 0; j < 16; j++) {
    s = "ACGT"[x & 3] + s;
    x = Math.floor(x / 4);
  }
  return s + "-1";
}

/** Planned clusters and DE effects; separate from the cell loop so tests can read the truth. */
export interface SimDesign {
  clusterProbs: Float64Array;
  /** nClusters × nGenes row-major gene shares q_kg. */
  shares: Float64Array[];
  /** Per cluster, the DE gene indices and their log fold changes β. */
  de: { genes: Int32Array; lfc: Float64Array }[];
}

export function designClusters(p: SimParams, rng: SimRng, nClusters: number, nDe: number, poolSize: number): SimDesign {
  const nG = p.logProp.length;
  const mito = p.geneNames.map((n) => /^MT-/i.test(n));
  const byMean = Array.from({ length: nG }, (_, g) => g)
    .filter((g) => !mito[g])
    .sort((a, b) => p.logProp[b] - p.logProp[a] || a - b)
    .slice(0, Math.min(poolSize, nG));
  const w = Float64Array.from({ length: nClusters }, () => Math.exp(0.5 * rng.normal()));
  const wSum = w.reduce((s, x) => s + x, 0);
  const floor = 0.02;
  const clusterProbs = w.map((x) => floor + (1 - floor * nClusters) * (x / wSum));
  const shares: Float64Array[] = [];
  const de: SimDesign["de"] = [];
  for (let k = 0; k < nClusters; k++) {
    // partial Fisher–Yates over the pool picks nDe distinct genes
    const pool = byMean.slice();
    const m = Math.min(nDe, pool.length);
    const genes = new Int32Array(m);
    const lfc = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      const j = i + Math.floor(rng.uniform() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j], pool[i]];
      genes[i] = pool[i];
      const mag = 0.7 - 0.8 * Math.log(1 - rng.uniform());
      lfc[i] = rng.uniform() < 0.7 ? mag : -mag;
    }
    const q = Float64Array.from(p.logProp, (lp) => lp);
    for (let i = 0; i < m; i++) q[genes[i]] += lfc[i];
    let s = 0;
    for (let g = 0; g < nG; g++) {
      q[g] = Math.exp(q[g]);
      s += q[g];
    }
    for (let g = 0; g < nG; g++) q[g] /= s;
    shares.push(q);
    de.push({ genes, lfc });
  }
  return { clusterProbs, shares, de };
}

/**
 * Mixing variables G (mean 1, variance φ_g) for every gene, from a few small pools so a cell's
 * look-ups stay in cache: dispersions are grouped into classes φ_j = φ_max·1.25^−j (j < CLASSES);
 * class j's pool is POOL Gamma(1/φ_j) draws moment-matched to mean 1 and variance φ_j, and gene g
 * in class j (the smallest φ_j ≥ φ_g, or the last class) uses G = 1 + s_g(v − 1) with
 * s_g = √(φ_g/φ_j) ≤ 1: still positive, mean 1, variance φ_g exactly (φ_g = 0: s_g = 0, G = 1).
 */
export interface GammaPools {
  /** CLASSES × POOL pool values. */
  values: Float32Array;
  /** Per gene, its class's offset in `values`. */
  off: Int32Array;
  /** Per gene, s_g. */
  shrink: Float64Array;
}

const CLASSES = 64;
const CLASS_RATIO = 1.25;

export function gammaPools(dispersion: Float64Array, rng: SimRng): GammaPools {
  const nG = dispersion.length;
  const phiMax = Math.max(1e-12, dispersion.reduce((m, x) => Math.max(m, x), 0));
  const values = new Float32Array(CLASSES * POOL);
  const v = new Float64Array(POOL);
  for (let j = 0; j < CLASSES; j++) {
    const phi = phiMax * CLASS_RATIO ** -j;
    for (let i = 0; i < POOL; i++) v[i] = rng.gamma(1 / phi);
    values.set(momentMatched(v, phi), j * POOL);
  }
  const off = new Int32Array(nG);
  const shrink = new Float64Array(nG);
  for (let g = 0; g < nG; g++) {
    const phi = dispersion[g];
    if (!(phi > 0)) continue; // class 0, s = 0: G = 1
    const j = Math.min(CLASSES - 1, Math.floor(Math.log(phiMax / phi) / Math.log(CLASS_RATIO) + 1e-9));
    off[g] = j * POOL;
    shrink[g] = Math.sqrt(phi / (phiMax * CLASS_RATIO ** -j));
  }
  return { values, off, shrink };
}

/**
 * a·v^b with b > 0 solving CV²(v^b) = φ and a making the mean 1 (CV² of v^b grows with b, from 0
 * at b = 0). In logs: f(b) = ln(n Σw²/(Σw)²) = ln(1 + φ), w = e^{b(ℓ−max ℓ)}, ℓ = ln v; safeguarded
 * Newton with f'(b) = 2(Σℓw²/Σw² − Σℓw/Σw).
 */
function momentMatched(v: Float64Array, phi: number): Float64Array {
  const n = v.length;
  const l = Float64Array.from(v, (x) => Math.log(Math.max(x, 1e-300)));
  const lMax = l.reduce((m, x) => Math.max(m, x), -Infinity);
  for (let i = 0; i < n; i++) l[i] -= lMax;
  const target = Math.log1p(phi);
  const w = new Float64Array(n);
  const evalAt = (b: number): [number, number] => {
    let s1 = 0, s2 = 0, t1 = 0, t2 = 0;
    for (let i = 0; i < n; i++) {
      const x = Math.exp(b * l[i]);
      w[i] = x;
      s1 += x;
      s2 += x * x;
      t1 += l[i] * x;
      t2 += l[i] * x * x;
    }
    return [Math.log(n * s2) - 2 * Math.log(s1) - target, 2 * (t2 / s2 - t1 / s1)];
  };
  let lo = 0;
  let hi = 1;
  while (evalAt(hi)[0] < 0 && hi < 1e6) hi *= 2;
  let b = Math.min(1, hi);
  for (let it = 0; it < 100; it++) {
    const [f, df] = evalAt(b);
    if (Math.abs(f) < 1e-13) break;
    if (f < 0) lo = b;
    else hi = b;
    const nb = b - f / df;
    b = nb > lo && nb < hi ? nb : 0.5 * (lo + hi);
  }
  evalAt(b);
  const mean = w.reduce((s, x) => s + x, 0) / n;
  return w.map((x) => x / mean);
}

/**
 * Per-cluster rate coefficients: gene g's rate share is r_g = base_g + slope_g·v with v its pool
 * value, i.e. q_g·(1 + s_g(v − 1)), so the cell loop does one multiply-add per gene.
 */
export interface ClusterRates {
  base: Float64Array;
  slope: Float64Array;
}

export function clusterRates(q: Float64Array, pools: GammaPools): ClusterRates {
  const slope = Float64Array.from(q, (x, g) => x * pools.shrink[g]);
  const base = Float64Array.from(q, (x, g) => x - slope[g]);
  return { base, slope };
}

/** Rates above this many expected counts get one direct Poisson draw instead of one exponential per count. */
const DIRECT = 4;

/** Reusable per-cell work space for sampleCell (sized for nG genes). */
export class CellScratch {
  readonly cum: Float64Array;
  readonly directGenes: Int32Array;
  readonly directCounts: Int32Array;
  constructor(nG: number) {
    this.cum = new Float64Array(nG + 1);
    this.directGenes = new Int32Array(nG);
    this.directCounts = new Int32Array(nG);
  }
}

/**
 * One cell's counts y_g ~ Poisson(lib·r_g) independently, r_g = (base_g + slope_g·v_g)·(mito_g ? mitoScale : 1),
 * v_g = pool value at hash32(word, g). A gene with lib·r_g > DIRECT gets a direct Poisson draw;
 * the others share one unit-rate Poisson process (in units of 1/lib) whose arrivals are counted in
 * consecutive intervals of length r_g: pass 1 builds the cumulative r, pass 2 walks the arrivals
 * against it. Writes the nonzero genes (ascending) and their counts; returns how many.
 */
export function sampleCell(
  rng: SimRng,
  word: number,
  lib: number,
  rates: ClusterRates,
  pools: GammaPools,
  mito: Uint8Array,
  mitoScale: number,
  scratch: CellScratch,
  outGenes: Int32Array,
  outCounts: Int32Array,
): number {
  const { base, slope } = rates;
  const { values, off } = pools;
  const { cum, directGenes, directCounts } = scratch;
  const nG = base.length;
  const inv = 1 / lib;
  const direct = DIRECT * inv;
  let nDirect = 0;
  let total = 0;
  for (let g = 0; g < nG; g++) {
    let r = base[g] + slope[g] * values[off[g] + (hash32(word, g) >>> (32 - POOL_BITS))];
    if (mito[g] !== 0) r *= mitoScale;
    if (r > direct) {
      const y = rng.poisson(lib * r);
      if (y > 0) {
        directGenes[nDirect] = g;
        directCounts[nDirect] = y;
        nDirect++;
      }
      r = 0;
    }
    total += r;
    cum[g] = total;
  }
  cum[nG] = Infinity; // sentinel: the walk below stops at the last gene
  directGenes[nDirect] = nG;
  let n = 0;
  let d = 0;
  let g = 0;
  let next = rng.exponential() * inv;
  while (next < total) {
    while (cum[g] <= next) g++;
    let y = 0;
    do {
      y++;
      next += rng.exponential() * inv;
    } while (next < cum[g]);
    for (; directGenes[d] < g; d++, n++) {
      outGenes[n] = directGenes[d];
      outCounts[n] = directCounts[d];
    }
    outGenes[n] = g;
    outCounts[n] = y;
    n++;
    g++;
  }
  for (; d < nDirect; d++, n++) {
    outGenes[n] = directGenes[d];
    outCounts[n] = directCounts[d];
  }
  return n;
}

/** Decimal digits of x (x ≥ 0 integer) written at buf[pos…]; returns the position after them. */
function putInt(buf: Uint8Array, pos: number, x: number): number {
  if (x < 10) {
    buf[pos] = 48 + x;
    return pos + 1;
  }
  let len = 1;
  for (let t = x; t >= 10; t = Math.floor(t / 10)) len++;
  for (let i = pos + len - 1; i >= pos; i--) {
    const d = x % 10;
    buf[i] = 48 + d;
    x = (x - d) / 10;
  }
  return pos + len;
}

async function writeOut(s: Writable, chunk: Buffer | string): Promise<void> {
  if (!s.write(chunk)) await once(s, "drain");
}

const CHUNK = 1 << 20;
const PAD = 20; // the size line's entry count may have up to PAD digits

export async function simulateTenx(opts: SimulateOptions): Promise<SimulateSummary> {
  const base = opts.params ?? defaultSimParams();
  const p = opts.nGenes === undefined ? base : extendSimParams(base, opts.nGenes, opts.seed);
  const nClusters = opts.nClusters ?? 8;
  const nG = p.logProp.length;
  const nCells = opts.nCells;
  const rng = new SimRng(opts.seed, 1);
  const design = designClusters(p, rng, nClusters, opts.nDeGenes ?? 60, opts.dePoolSize ?? 3000);
  const pools = gammaPools(p.dispersion, new SimRng(opts.seed, 2));
  const rates = design.shares.map((q) => clusterRates(q, pools));
  const mito = Uint8Array.from(p.geneNames, (n) => (/^MT-/i.test(n) ? 1 : 0));
  const mitoSd = opts.mitoSd ?? 0.35;
  const cdf = new Float64Array(nClusters);
  design.clusterProbs.reduce((acc, x, k) => (cdf[k] = acc + x), 0);

  // 1-based gene numbers as text, so an entry's row field is a byte copy
  const geneTxt = Buffer.from(Array.from({ length: nG }, (_, g) => String(g + 1)).join(""), "latin1");
  const geneOff = new Int32Array(nG + 1);
  for (let g = 0; g < nG; g++) geneOff[g + 1] = geneOff[g] + String(g + 1).length;

  mkdirSync(opts.outDir, { recursive: true });
  const mtxPath = join(opts.outDir, "matrix.mtx.gz");
  const tmpPath = mtxPath + ".tmp";
  const header = (nnz: number) => {
    const count = String(nnz);
    return gzipSync(
      "%%MatrixMarket matrix coordinate integer general\n" +
        `%metadata_json: {"simulator": "cellgpu src/sim", "seed": ${opts.seed}, "clusters": ${nClusters}, "genes": ${nG}, "params": ${JSON.stringify(p.source)}}\n` +
        `%${" ".repeat(PAD - count.length)}\n${nG} ${nCells} ${count}\n`,
      { level: 0 },
    );
  };
  const placeholder = header(0);
  writeFileSync(tmpPath, placeholder);
  // zlib passes stream options through to its Transform: room for a few buffers in flight
  const gzOpts: ZlibOptions & TransformOptions = { level: 1, chunkSize: CHUNK, writableHighWaterMark: 4 * CHUNK };
  const gz = createGzip(gzOpts);
  const mtxDone = pipeline(gz, createWriteStream(tmpPath, { flags: "a" }));
  const bcGz = createGzip({ level: 1 });
  const bcDone = pipeline(bcGz, createWriteStream(join(opts.outDir, "barcodes.tsv.gz")));
  const truthOut = createWriteStream(join(opts.outDir, "truth.tsv"));
  const truthDone = once(truthOut, "finish");
  await writeOut(truthOut, "barcode\tcluster\n");

  const clusterSizes = new Array<number>(nClusters).fill(0);
  const cellRng = new SimRng(opts.seed, 3);
  const scratch = new CellScratch(nG);
  const genes = new Int32Array(nG);
  const counts = new Int32Array(nG);
  const colTxt = new Uint8Array(16);
  let nnz = 0;
  let totalCounts = 0;
  let buf = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  let bcText = "";
  let truthText = "";
  const flush = async () => {
    await writeOut(gz, buf.subarray(0, pos));
    await writeOut(bcGz, bcText);
    await writeOut(truthOut, truthText);
    buf = Buffer.allocUnsafe(CHUNK);
    pos = 0;
    bcText = "";
    truthText = "";
  };
  for (let c = 0; c < nCells; c++) {
    const u = cellRng.uniform();
    let k = 0;
    while (k < nClusters - 1 && u >= cdf[k]) k++;
    clusterSizes[k]++;
    const lib = opts.libSize ?? Math.exp(p.libLogMean + p.libLogSd * cellRng.normal());
    const mitoScale = Math.exp(mitoSd * cellRng.normal());
    const n = sampleCell(cellRng, cellRng.u32(), lib, rates[k], pools, mito, mitoScale, scratch, genes, counts);
    const colLen = putInt(colTxt, 0, c + 1);
    // an entry: gene digits, space, column digits, space, count digits (≤ 10), newline
    const need = n * (geneOff[nG] - geneOff[nG - 1] + colLen + 13);
    if (pos + need > buf.length) {
      await flush();
      if (need > buf.length) buf = Buffer.allocUnsafe(need);
    }
    for (let i = 0; i < n; i++) {
      const g = genes[i];
      for (let j = geneOff[g]; j < geneOff[g + 1]; j++) buf[pos++] = geneTxt[j];
      buf[pos++] = 32;
      for (let j = 0; j < colLen; j++) buf[pos++] = colTxt[j];
      buf[pos++] = 32;
      pos = putInt(buf, pos, counts[i]);
      buf[pos++] = 10;
      totalCounts += counts[i];
    }
    nnz += n;
    const bc = barcode(c);
    bcText += bc + "\n";
    truthText += `${bc}\t${k}\n`;
  }
  await flush();
  gz.end();
  bcGz.end();
  truthOut.end();
  await Promise.all([mtxDone, bcDone, truthDone]);

  const final = header(nnz);
  if (final.length !== placeholder.length) throw new Error("simulator: MTX header length changed (entry count too long)");
  const fd = openSync(tmpPath, "r+");
  try {
    writeSync(fd, final, 0, final.length, 0);
  } finally {
    closeSync(fd);
  }
  renameSync(tmpPath, mtxPath);
  writeFileSync(
    join(opts.outDir, "features.tsv.gz"),
    gzipSync(p.geneIds.map((id, g) => `${id}\t${p.geneNames[g]}\tGene Expression\n`).join("")),
  );
  return { nCells, nGenes: nG, nnz, totalCounts, clusterSizes };
}
