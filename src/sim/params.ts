/**
 * Per-gene simulator parameters estimated from a real dataset (pbmc3k): each gene's share of the
 * library and its negative-binomial dispersion, plus the log-normal library-size distribution.
 * Stored as a small gzipped TSV beside this file (`pbmc3k_genes.tsv.gz`, written by `fitSimParams`
 * through `node dist/bench.js fit-sim`) so the simulator needs no dataset at run time.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import type { CellMatrix } from "../core/cellMatrix.js";
import { subsetRows } from "../core/csr.js";
import { cellQcCpu, mitoMask } from "../ops/qc.js";
import { SimRng } from "./rng.js";

export interface SimParams {
  source: string;
  /** ln(total counts) of the QC-passing cells: mean and standard deviation. */
  libLogMean: number;
  libLogSd: number;
  geneIds: string[];
  geneNames: string[];
  /** ln of the gene's share of all counts. */
  logProp: Float64Array;
  /** NB dispersion φ (variance = μ + φμ²); 0 = Poisson. */
  dispersion: Float64Array;
}

export const PARAMS_FILE = "pbmc3k_genes.tsv.gz";

/** Highest dispersion kept: beyond it a gene is essentially on/off and the estimate is noise. */
const MAX_DISPERSION = 50;

/**
 * Method-of-moments fit on the cells passing the tutorial QC (min 200 genes, < maxGenes genes,
 * < maxPctMt % mito) for genes seen in ≥ minCells of them: with μ_gc = L_c p_g,
 * φ_g = (Σ_c (y_gc − μ_gc)² − Σ_c μ_gc) / Σ_c μ_gc², clipped to [0, 50].
 * The dispersion therefore includes pbmc3k's cell-type heterogeneity: simulated clusters add to it.
 */
export function fitSimParams(cm: CellMatrix, opts = { minGenes: 200, maxGenes: 2500, maxPctMt: 5, minCells: 3 }): SimParams {
  const qc = cellQcCpu(cm.X, mitoMask(cm.var.index));
  const keep = new Uint8Array(cm.X.nRows);
  for (let i = 0; i < keep.length; i++) {
    const g = qc.nGenesByCounts[i];
    keep[i] = g >= opts.minGenes && g < opts.maxGenes && qc.pctCountsMt[i] < opts.maxPctMt ? 1 : 0;
  }
  const X = subsetRows(cm.X, keep);
  const n = X.nRows;
  const nG = X.nCols;
  const lib = new Float64Array(n);
  const cellsPer = new Int32Array(nG);
  const geneSum = new Float64Array(nG);
  let total = 0;
  for (let c = 0; c < n; c++) {
    for (let o = X.indptr[c]; o < X.indptr[c + 1]; o++) {
      lib[c] += X.data[o];
      geneSum[X.indices[o]] += X.data[o];
      cellsPer[X.indices[o]]++;
    }
    total += lib[c];
  }
  let sumLog = 0;
  let sumLog2 = 0;
  let sumL2 = 0;
  for (const l of lib) {
    sumLog += Math.log(l);
    sumLog2 += Math.log(l) ** 2;
    sumL2 += l * l;
  }
  const libLogMean = sumLog / n;
  const libLogSd = Math.sqrt((sumLog2 - n * libLogMean * libLogMean) / (n - 1));
  // Σ_c (y−μ)² = Σ y² − 2 p Σ y L + p² Σ L²; the zero entries contribute through Σ L².
  const sumY2 = new Float64Array(nG);
  const sumYL = new Float64Array(nG);
  for (let c = 0; c < n; c++) {
    for (let o = X.indptr[c]; o < X.indptr[c + 1]; o++) {
      const g = X.indices[o];
      const y = X.data[o];
      sumY2[g] += y * y;
      sumYL[g] += y * lib[c];
    }
  }
  const ids = cm.var.columns.get("gene_ids");
  const idValues = ids?.kind === "string" ? ids.values : cm.var.index;
  const out: SimParams = {
    source: cm.source,
    libLogMean,
    libLogSd,
    geneIds: [],
    geneNames: [],
    logProp: new Float64Array(0),
    dispersion: new Float64Array(0),
  };
  const lp: number[] = [];
  const disp: number[] = [];
  for (let g = 0; g < nG; g++) {
    if (cellsPer[g] < opts.minCells) continue;
    const p = geneSum[g] / total;
    const ss = sumY2[g] - 2 * p * sumYL[g] + p * p * sumL2;
    const sumMu = p * total;
    const phi = (ss - sumMu) / (p * p * sumL2);
    out.geneIds.push(idValues[g]);
    out.geneNames.push(cm.var.index[g]);
    lp.push(Math.log(p));
    disp.push(Math.min(MAX_DISPERSION, Math.max(0, phi)));
  }
  out.logProp = Float64Array.from(lp);
  out.dispersion = Float64Array.from(disp);
  return out;
}

export function writeSimParams(p: SimParams, path: string): void {
  const lines = [
    `# source\t${p.source}`,
    `# lib_log_mean\t${p.libLogMean}`,
    `# lib_log_sd\t${p.libLogSd}`,
    "gene_id\tgene_name\tlog_prop\tdispersion",
  ];
  for (let g = 0; g < p.geneIds.length; g++) {
    lines.push(`${p.geneIds[g]}\t${p.geneNames[g]}\t${p.logProp[g].toPrecision(6)}\t${p.dispersion[g].toPrecision(4)}`);
  }
  writeFileSync(path, gzipSync(lines.join("\n") + "\n", { level: 9 }));
}

export function readSimParams(path: string): SimParams {
  const text = gunzipSync(readFileSync(path)).toString("utf8");
  const meta = new Map<string, string>();
  const ids: string[] = [];
  const names: string[] = [];
  const lp: number[] = [];
  const disp: number[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("gene_id\t")) continue;
    const f = line.split("\t");
    if (line.startsWith("# ")) {
      meta.set(f[0].slice(2), f[1]);
      continue;
    }
    ids.push(f[0]);
    names.push(f[1]);
    lp.push(Number(f[2]));
    disp.push(Number(f[3]));
  }
  return {
    source: meta.get("source") ?? path,
    libLogMean: Number(meta.get("lib_log_mean")),
    libLogSd: Number(meta.get("lib_log_sd")),
    geneIds: ids,
    geneNames: names,
    logProp: Float64Array.from(lp),
    dispersion: Float64Array.from(disp),
  };
}

/**
 * `p` grown to `nGenes` genes: each extra gene copies the (log share, dispersion) of a fitted
 * gene drawn uniformly (deterministic per seed), is named SIMG00001… with id SIMENSG00001…
 * (never mito), and all shares are renormalised to sum to 1. Fewer genes than fitted: an error.
 */
export function extendSimParams(p: SimParams, nGenes: number, seed: number): SimParams {
  const n0 = p.logProp.length;
  if (!Number.isInteger(nGenes) || nGenes < n0) {
    throw new Error(`nGenes ${nGenes} must be an integer ≥ the ${n0} genes of the fitted parameters (${p.source})`);
  }
  if (nGenes === n0) return p;
  const rng = new SimRng(seed, 4);
  const logProp = new Float64Array(nGenes);
  const dispersion = new Float64Array(nGenes);
  logProp.set(p.logProp);
  dispersion.set(p.dispersion);
  const geneIds = p.geneIds.slice();
  const geneNames = p.geneNames.slice();
  const width = Math.max(5, String(nGenes - n0).length);
  for (let g = n0; g < nGenes; g++) {
    const src = Math.floor(rng.uniform() * n0);
    logProp[g] = p.logProp[src];
    dispersion[g] = p.dispersion[src];
    const num = String(g - n0 + 1).padStart(width, "0");
    geneNames.push(`SIMG${num}`);
    geneIds.push(`SIMENSG${num}`);
  }
  let s = 0;
  for (let g = 0; g < nGenes; g++) s += Math.exp(logProp[g]);
  const ls = Math.log(s);
  for (let g = 0; g < nGenes; g++) logProp[g] -= ls;
  return { ...p, geneIds, geneNames, logProp, dispersion };
}

/** The committed pbmc3k parameters, found beside this source file or, bundled, under src/sim. */
export function defaultSimParams(): SimParams {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, PARAMS_FILE), join(here, "../src/sim", PARAMS_FILE)]) {
    if (existsSync(p)) return readSimParams(p);
  }
  throw new Error(`simulator parameters ${PARAMS_FILE} not found beside ${here} or in ../src/sim`);
}
