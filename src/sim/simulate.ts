/**
 * Negative-binomial count simulator with cluster structure, written as a 10x MTX directory by
 * streaming one cell at a time (memory independent of the number of cells).
 *
 * Model, per cell c in cluster k and gene g:
 *   L_c ~ LogNormal(libLogMean, libLogSd)                    library size (pbmc3k's)
 *   q_kg = p_g · exp(β_kg) / Σ_g' p_g' exp(β_kg')             gene shares, renormalised per cluster
 *   μ_gc = L_c · q_kg · (m_c for mito genes)                  m_c ~ LogNormal(0, mitoSd)
 *   y_gc ~ Poisson(μ_gc · G),  G ~ Gamma(1/φ_g, φ_g)          i.e. NB(μ, φ_g)
 * β_kg ≠ 0 on `nDeGenes` genes per cluster drawn from the `dePoolSize` most expressed non-mito
 * genes (|β| = 0.7 + Exp(mean 0.8), up with probability 0.7). Cluster proportions are random
 * (log-normal weights, every cluster ≥ 2 %).
 *
 * Speed: the gamma mixing variable is drawn from a per-gene pool of `POOL` pre-drawn values
 * (rescaled to mean exactly 1), so a cell costs one table look-up and one mostly-zero Poisson
 * draw per gene; the model above is otherwise exact. Deterministic per seed.
 *
 * Output: matrix.mtx.gz (features × cells, entries cell by cell = column-major), features.tsv.gz,
 * barcodes.tsv.gz, truth.tsv (barcode, cluster). The MTX is two gzip members: the header
 * (whose entry count is only known at the end) and the body; gzip readers concatenate members.
 */
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import { createGzip, gzipSync } from "node:zlib";
import { pipeline } from "node:stream/promises";
import { createReadStream } from "node:fs";
import { defaultSimParams, type SimParams } from "./params.js";
import { SimRng } from "./rng.js";

export interface SimulateOptions {
  nCells: number;
  outDir: string;
  seed: number;
  nClusters?: number;
  nDeGenes?: number;
  dePoolSize?: number;
  mitoSd?: number;
  params?: SimParams;
}

export interface SimulateSummary {
  nCells: number;
  nGenes: number;
  nnz: number;
  totalCounts: number;
  clusterSizes: number[];
}

const POOL = 256;

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

/** Per-gene pools of Gamma(1/φ, φ) draws, each rescaled to mean exactly 1 (φ = 0: all ones). */
function gammaPools(p: SimParams, rng: SimRng): Float32Array {
  const nG = p.dispersion.length;
  const pools = new Float32Array(nG * POOL);
  const tmp = new Float64Array(POOL);
  for (let g = 0; g < nG; g++) {
    const phi = p.dispersion[g];
    if (phi < 1e-6) {
      pools.fill(1, g * POOL, (g + 1) * POOL);
      continue;
    }
    let s = 0;
    for (let i = 0; i < POOL; i++) {
      tmp[i] = rng.gamma(1 / phi);
      s += tmp[i];
    }
    for (let i = 0; i < POOL; i++) pools[g * POOL + i] = s > 0 ? (tmp[i] * POOL) / s : 1;
  }
  return pools;
}

export async function simulateTenx(opts: SimulateOptions): Promise<SimulateSummary> {
  const p = opts.params ?? defaultSimParams();
  const nClusters = opts.nClusters ?? 8;
  const nG = p.logProp.length;
  const rng = new SimRng(opts.seed, 1);
  const design = designClusters(p, rng, nClusters, opts.nDeGenes ?? 60, opts.dePoolSize ?? 3000);
  const pools = gammaPools(p, new SimRng(opts.seed, 2));
  const mito = Uint8Array.from(p.geneNames, (n) => (/^MT-/i.test(n) ? 1 : 0));
  const mitoSd = opts.mitoSd ?? 0.35;
  const cdf = new Float64Array(nClusters);
  design.clusterProbs.reduce((acc, x, k) => (cdf[k] = acc + x), 0);

  mkdirSync(opts.outDir, { recursive: true });
  const bodyPath = join(opts.outDir, "matrix.body.tmp.gz");
  const gz = createGzip({ level: 1 });
  const sink = createWriteStream(bodyPath);
  const piped = pipeline(gz, sink);
  const truth: string[] = ["barcode\tcluster"];
  const bcs: string[] = [];
  const clusterSizes = new Array<number>(nClusters).fill(0);
  const cellRng = new SimRng(opts.seed, 3);
  let nnz = 0;
  let totalCounts = 0;
  let chunk: string[] = [];
  let chunkLen = 0;
  for (let c = 0; c < opts.nCells; c++) {
    const u = cellRng.uniform();
    let k = 0;
    while (k < nClusters - 1 && u >= cdf[k]) k++;
    clusterSizes[k]++;
    const lib = Math.exp(p.libLogMean + p.libLogSd * cellRng.normal());
    const mitoScale = Math.exp(mitoSd * cellRng.normal());
    const q = design.shares[k];
    const col = c + 1;
    for (let g = 0; g < nG; g++) {
      let mu = lib * q[g] * pools[g * POOL + (cellRng.u32() & (POOL - 1))];
      if (mito[g]) mu *= mitoScale;
      const y = cellRng.poisson(mu);
      if (y > 0) {
        chunk.push(`${g + 1} ${col} ${y}\n`);
        nnz++;
        totalCounts += y;
      }
    }
    const bc = barcode(c);
    bcs.push(bc);
    truth.push(`${bc}\t${k}`);
    chunkLen++;
    if (chunkLen >= 256 || c === opts.nCells - 1) {
      if (!gz.write(chunk.join(""))) await once(gz, "drain");
      chunk = [];
      chunkLen = 0;
    }
  }
  gz.end();
  await piped;

  const header = `%%MatrixMarket matrix coordinate integer general\n%metadata_json: {"simulator": "cellgpu src/sim", "seed": ${opts.seed}, "clusters": ${nClusters}, "params": ${JSON.stringify(p.source)}}\n${nG} ${opts.nCells} ${nnz}\n`;
  const mtxPath = join(opts.outDir, "matrix.mtx.gz");
  const tmpPath = mtxPath + ".tmp";
  writeFileSync(tmpPath, gzipSync(header));
  await pipeline(createReadStream(bodyPath), createWriteStream(tmpPath, { flags: "a" }));
  await rm(bodyPath);
  await rename(tmpPath, mtxPath);
  writeFileSync(
    join(opts.outDir, "features.tsv.gz"),
    gzipSync(p.geneIds.map((id, g) => `${id}\t${p.geneNames[g]}\tGene Expression\n`).join("")),
  );
  writeFileSync(join(opts.outDir, "barcodes.tsv.gz"), gzipSync(bcs.join("\n") + "\n"));
  writeFileSync(join(opts.outDir, "truth.tsv"), truth.join("\n") + "\n");
  return { nCells: opts.nCells, nGenes: nG, nnz, totalCounts, clusterSizes };
}
