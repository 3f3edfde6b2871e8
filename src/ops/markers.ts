/**
 * Marker genes: scanpy's `tl.rank_genes_groups(reference='rest', corr_method='benjamini-hochberg')`
 * with method 'wilcoxon' (optionally tie-corrected) or 't-test' (Welch), on log-normalized data.
 *
 * Wilcoxon (scanpy's `_RankGenes.wilcoxon`, no reference): for each gene, exact average-tie ranks
 * over all tested cells; R = rank sum of the group;
 *   z = (R - n1 (N+1)/2) / sqrt(tc · n1 n2 (N+1) / 12),  tc = 1 - Σ(t³ - t)/(N³ - N) or 1;
 * a NaN z becomes 0; p = 2·sf(|z|) under the standard normal.
 * t-test (scanpy's `_RankGenes.t_test`): Welch t from group/rest means and variances (ddof 1),
 * p two-sided from Student's t with Welch–Satterthwaite df (scipy's ttest_ind_from_stats,
 * equal_var=False: a NaN df becomes 1); NaN t -> score 0, NaN p -> 1.
 * Both: BH-adjusted p per group over all genes (statsmodels fdr_bh);
 *   logfoldchanges = log2((expm1(mean_g) + 1e-9) / (expm1(mean_rest) + 1e-9)), means of the log values.
 *
 * Differences from scanpy, on purpose:
 * - Cells labelled -1 take no part at all (neither group nor rest, and not ranked); scanpy puts
 *   every cell not in the group, labelled or not, into 'rest'.
 * - Ties in the per-group ordering go to the larger gene index first: scanpy reverses an ascending
 *   argsort, which in practice leaves exact ties in descending index order.
 *
 * How: zeros of a gene form one tie block, so only its nonzeros are sorted: a chunk of genes'
 * nonzeros, as order-preserving uint32 images of the float32 values, is gathered gene by gene and
 * each gene's run radix-sorted by value, carrying each cell's group along (ties are exact float32
 * equality, as in scanpy's rank of the float32 matrix). Chunks bound the memory. Rank sums are
 * multiples of 1/2, exact in float64. rankGenesGroupsBlockedCpu takes the matrix a block of genes
 * at a time (for matrices too large to hold); every per-gene statistic depends on that gene's
 * column only, so any block size gives the same bytes.
 */
import type { Csr } from "../core/csr.js";
import type { UnsValue } from "../pipeline/result.js";
import { GpuError, type Gpu, type Step } from "../gpu/device.js";

export interface MarkerResult {
  groupNames: string[];
  /** per group, arrays over all genes (index = gene) */
  scores: Float64Array[];
  logfoldchanges: Float64Array[];
  pvals: Float64Array[];
  pvalsAdj: Float64Array[];
  /** per group, gene indices sorted by score descending (exact ties: larger gene index first, as scanpy) */
  order: Int32Array[];
}

export interface MarkerOptions {
  method: "wilcoxon" | "t-test";
  tieCorrect: boolean;
}

/** Most nonzeros sorted at once (4 uint32 buffers: 64 MiB), unless one gene has more. */
const KEY_BUDGET = 1 << 22;
/** Gene segments shorter than this are insertion-sorted (radix histograms cost more). */
const INSERTION_MAX = 48;

/**
 * X: log-normalized cells × genes; labels: group code per cell (0..nGroups-1, -1 = excluded).
 * Throws if a group has fewer than 2 cells, as scanpy does.
 */
export function rankGenesGroupsCpu(X: Csr, labels: Int32Array, groupNames: string[], opts: MarkerOptions): MarkerResult {
  return rankGenesGroupsBlockedCpu(X.nRows, X.nCols, () => X, Math.max(1, X.nCols), labels, groupNames, opts);
}

/**
 * Same result as rankGenesGroupsCpu on the matrix whose columns are the blocks side by side, for
 * matrices too large to hold: block(j0, j1) returns the cells × (j1 − j0) log-normalized values of
 * genes [j0, j1) (column indices local to the block), called once per block in gene order with
 * blocks of blockGenes genes (the last smaller). Every per-gene statistic depends only on that
 * gene's column, and BH and the ordering run once over all genes afterwards, so the result is
 * bit-identical for any blockGenes. Kept across blocks: only the per group × gene outputs.
 */
export function rankGenesGroupsBlockedCpu(
  nRows: number,
  nGenes: number,
  block: (j0: number, j1: number) => Csr,
  blockGenes: number,
  labels: Int32Array,
  groupNames: string[],
  opts: MarkerOptions,
): MarkerResult {
  if (opts.method !== "wilcoxon" && opts.method !== "t-test") throw new Error(`rankGenesGroups: unknown method ${String(opts.method)}`);
  if (!Number.isInteger(blockGenes) || blockGenes < 1) throw new Error(`rankGenesGroups: blockGenes must be a positive integer, got ${blockGenes}`);
  const nGroups = groupNames.length;
  const { groupSize, nLabelled } = checkGroups(nRows, labels, groupNames);
  const out = emptyResult(groupNames, nGenes);
  const scratch: SortScratch = { val: new Uint32Array(0), tag: new Uint32Array(0), val2: new Uint32Array(0), tag2: new Uint32Array(0) };
  for (let j0 = 0; j0 < nGenes; j0 += blockGenes) {
    const j1 = Math.min(nGenes, j0 + blockGenes);
    const X = block(j0, j1);
    if (X.nRows !== nRows || X.nCols !== j1 - j0) {
      throw new Error(`rankGenesGroups: block of genes ${j0}..${j1} is ${X.nRows} x ${X.nCols}, expected ${nRows} x ${j1 - j0}`);
    }
    const w = j1 - j0;
    // Per group × gene sums of values and squares (float64, layout g·w + t), stored nonzeros per gene.
    const sum = new Float64Array(nGroups * w);
    const sumSq = new Float64Array(nGroups * w);
    const nzPerGene = new Float64Array(w);
    for (let r = 0; r < nRows; r++) {
      const g = labels[r];
      if (g < 0) continue;
      const off = g * w;
      const end = X.indptr[r + 1];
      for (let k = X.indptr[r]; k < end; k++) {
        const v = X.data[k];
        if (v === 0) continue;
        const t = X.indices[k];
        sum[off + t] += v;
        sumSq[off + t] += v * v;
        nzPerGene[t]++;
      }
    }
    const ranks = opts.method === "wilcoxon" ? wilcoxonRanks(X, labels, nGroups, nLabelled, nzPerGene, scratch) : undefined;
    finishGenes(out, j0, w, groupSize, nLabelled, opts.tieCorrect, sum, sumSq, ranks);
  }
  return finishResult(out);
}

/** Per group × gene (layout g·w + t) rank sums over the nonzeros and their counts; per gene the
 * stored nonzeros, Σ(t³ − t) over the nonzero tie blocks and the count of negative values. */
interface RankSums {
  rankSum: Float64Array;
  nzInGroup: Float64Array;
  nzPerGene: Float64Array;
  tieSum: Float64Array;
  nNeg: Float64Array;
}

/** (value key, group) pairs and their double buffers, grown on demand and reused across blocks. */
interface SortScratch {
  val: Uint32Array;
  tag: Uint32Array;
  val2: Uint32Array;
  tag2: Uint32Array;
}

/**
 * Average-tie ranks among N labelled cells of one block's labelled nonzeros, summed per group × gene.
 * The zeros of a gene are one tie block between its negatives and positives, so only the nonzeros
 * are sorted; finishGenes adds the zero block.
 */
function wilcoxonRanks(X: Csr, labels: Int32Array, nGroups: number, N: number, nzPerGene: Float64Array, scratch: SortScratch): RankSums {
  const w = X.nCols;
  let maxGene = 0;
  let nzAll = 0;
  for (let t = 0; t < w; t++) {
    maxGene = Math.max(maxGene, nzPerGene[t]);
    nzAll += nzPerGene[t];
  }
  const cap = Math.max(1, Math.min(Math.max(KEY_BUDGET, maxGene), nzAll));
  if (scratch.val.length < cap) {
    scratch.val = new Uint32Array(cap);
    scratch.tag = new Uint32Array(cap);
    scratch.val2 = new Uint32Array(cap);
    scratch.tag2 = new Uint32Array(cap);
  }
  const { val, tag } = scratch;
  const bits = new Uint32Array(X.data.buffer, X.data.byteOffset, X.data.length);
  const cursor = Float64Array.from(X.indptr.subarray(0, X.nRows));
  const hist = new Uint32Array(3 << 11);
  const start = new Float64Array(w + 1);
  const rankSum = new Float64Array(nGroups);
  const nzInGroup = new Float64Array(nGroups);
  const res: RankSums = {
    rankSum: new Float64Array(nGroups * w),
    nzInGroup: new Float64Array(nGroups * w),
    nzPerGene,
    tieSum: new Float64Array(w),
    nNeg: new Float64Array(w),
  };

  let c0 = 0;
  while (c0 < w) {
    // Genes [c0, c1) whose nonzeros fit in the buffers (at least one gene); gene t's nonzeros go to
    // [start[t], start[t + 1]).
    let c1 = c0;
    let used = 0;
    while (c1 < w && (c1 === c0 || used + nzPerGene[c1] <= cap)) {
      start[c1] = used;
      used += nzPerGene[c1];
      c1++;
    }
    start[c1] = used;

    // Gather into each gene's segment, in row order; each row's columns are increasing, so a
    // cursor per row walks through the chunks in order.
    const fill = start.slice(c0, c1);
    for (let r = 0; r < X.nRows; r++) {
      const end = X.indptr[r + 1];
      let k = cursor[r];
      const g = labels[r];
      for (; k < end && X.indices[k] < c1; k++) {
        if (g < 0 || X.data[k] === 0) continue;
        const b = bits[k];
        const o = fill[X.indices[k] - c0]++;
        // Order-preserving image of the float32: negatives (sign bit set) reverse their bit order
        // and land below the positives.
        val[o] = b >= 0x80000000 ? 0xffffffff - b : b + 0x80000000;
        tag[o] = g;
      }
      cursor[r] = k;
    }

    for (let t = c0; t < c1; t++) {
      const a = start[t];
      const nz = start[t + 1] - a;
      const zeros = N - nz;
      sortByValue(scratch, a, nz, hist);
      let nNeg = 0;
      while (nNeg < nz && val[a + nNeg] < 0x80000000) nNeg++;
      // Per-gene accumulators stay in cache; the block's arrays are strided by w.
      rankSum.fill(0);
      nzInGroup.fill(0);
      let tieSum = 0;
      let i = 0;
      while (i < nz) {
        const value = val[a + i];
        let e = i + 1;
        while (e < nz && val[a + e] === value) e++;
        const ties = e - i;
        const avg = i + 1 + (i >= nNeg ? zeros : 0) + (ties - 1) / 2;
        for (let q = a + i; q < a + e; q++) {
          rankSum[tag[q]] += avg;
          nzInGroup[tag[q]]++;
        }
        tieSum += ties * ties * ties - ties;
        i = e;
      }
      for (let g = 0; g < nGroups; g++) {
        res.rankSum[g * w + t] = rankSum[g];
        res.nzInGroup[g * w + t] = nzInGroup[g];
      }
      res.tieSum[t] = tieSum;
      res.nNeg[t] = nNeg;
    }
    c0 = c1;
  }
  return res;
}

/**
 * Sorts scratch.val[a, a + n) ascending, carrying scratch.tag: insertion sort when short, else LSD
 * radix in three 11-bit digits (passes whose digit is the same for every key skipped). One gene's
 * segment stays in cache, unlike one radix sort over a whole chunk. The order within a run of equal
 * values is irrelevant to the rank sums (each adds the same average rank).
 */
function sortByValue(s: SortScratch, a: number, n: number, hist: Uint32Array): void {
  const end = a + n;
  if (n <= INSERTION_MAX) {
    const { val, tag } = s;
    for (let i = a + 1; i < end; i++) {
      const v = val[i];
      const g = tag[i];
      let k = i - 1;
      while (k >= a && val[k] > v) {
        val[k + 1] = val[k];
        tag[k + 1] = tag[k];
        k--;
      }
      val[k + 1] = v;
      tag[k + 1] = g;
    }
    return;
  }
  hist.fill(0);
  let src = s.val;
  let srcTag = s.tag;
  for (let i = a; i < end; i++) {
    const v = src[i];
    hist[v & 0x7ff]++;
    hist[2048 + ((v >>> 11) & 0x7ff)]++;
    hist[4096 + (v >>> 22)]++;
  }
  let dst = s.val2;
  let dstTag = s.tag2;
  for (let pass = 0; pass < 3; pass++) {
    const base = pass << 11;
    const shift = pass * 11;
    if (hist[base + ((src[a] >>> shift) & 0x7ff)] === n) continue;
    let acc = a;
    for (let d = base; d < base + 2048; d++) {
      const c = hist[d];
      hist[d] = acc;
      acc += c;
    }
    for (let i = a; i < end; i++) {
      const v = src[i];
      const o = hist[base + ((v >>> shift) & 0x7ff)]++;
      dst[o] = v;
      dstTag[o] = srcTag[i];
    }
    [src, dst] = [dst, src];
    [srcTag, dstTag] = [dstTag, srcTag];
  }
  if (src !== s.val) {
    s.val.set(src.subarray(a, end), a);
    s.tag.set(srcTag.subarray(a, end), a);
  }
}

/** A MarkerResult over nGenes genes with zeroed per-gene outputs (pvalsAdj and order filled by finishResult). */
function emptyResult(groupNames: string[], nGenes: number): MarkerResult {
  const per = () => groupNames.map(() => new Float64Array(nGenes));
  return { groupNames: groupNames.slice(), scores: per(), logfoldchanges: per(), pvals: per(), pvalsAdj: [], order: [] };
}

/** BH per group and the per-group ordering, over all genes (both twins). */
function finishResult(out: MarkerResult): MarkerResult {
  out.pvalsAdj = out.pvals.map(benjaminiHochberg);
  out.order = out.scores.map(orderByScoreDesc);
  return out;
}

/**
 * Scores, p-values and logfoldchanges of genes j0..j0+w−1 from their per group × gene sums (layout
 * g·w + t) and, for Wilcoxon, rank sums; N labelled cells. Shared by both twins.
 */
function finishGenes(
  out: MarkerResult,
  j0: number,
  w: number,
  groupSize: Float64Array,
  N: number,
  tieCorrect: boolean,
  sum: Float64Array,
  sumSq: Float64Array,
  ranks: RankSums | undefined,
): void {
  const nGroups = groupSize.length;
  const { total, totalSq } = overGroups(sum, sumSq, nGroups, w);
  const meanRank = (N + 1) / 2;
  const tieDenom = N * N * N - N;
  for (let g = 0; g < nGroups; g++) {
    const score = out.scores[g];
    const pval = out.pvals[g];
    const lfc = out.logfoldchanges[g];
    const n1 = groupSize[g];
    const n2 = N - n1;
    for (let t = 0; t < w; t++) {
      const o = g * w + t;
      const j = j0 + t;
      const s = sum[o];
      const meanG = s / n1;
      const meanRest = (total[t] - s) / n2;
      lfc[j] = Math.log2((Math.expm1(meanG) + 1e-9) / (Math.expm1(meanRest) + 1e-9));
      if (ranks) {
        // The zeros are one tie block between the negatives and the positives.
        const zeros = N - ranks.nzPerGene[t];
        const nNeg = ranks.nNeg[t];
        const tc = tieCorrect && N >= 2 ? 1 - (zeros * zeros * zeros - zeros + ranks.tieSum[t]) / tieDenom : 1;
        const R = ranks.rankSum[o] + (nNeg + (zeros + 1) / 2) * (n1 - ranks.nzInGroup[o]);
        // Same operation order as scanpy.
        const std = Math.sqrt((tc * n1 * (N - n1) * (N + 1)) / 12.0);
        let z = (R - n1 * meanRank) / std;
        if (Number.isNaN(z)) z = 0;
        score[j] = z;
        pval[j] = normalTwoSidedP(z);
      } else {
        const v1 = varianceFromSums(s, sumSq[o], n1);
        const v2 = varianceFromSums(total[t] - s, totalSq[t] - sumSq[o], n2);
        const { t: tStat, p } = welchTTest(meanG, v1, n1, meanRest, v2, n2);
        score[j] = Number.isNaN(tStat) ? 0 : tStat;
        pval[j] = Number.isNaN(p) ? 1 : p;
      }
    }
  }
}

/** Sample variance (ddof 1) from float64 sums, clamped at 0 against rounding. */
function varianceFromSums(s: number, sq: number, n: number): number {
  const mean = s / n;
  return Math.max(0, (sq - n * mean * mean) / (n - 1));
}
/** Per-gene sums over all groups of the group × gene sums and sums of squares (fixed order). */
function overGroups(sum: Float64Array, sumSq: Float64Array, nGroups: number, nGenes: number): { total: Float64Array; totalSq: Float64Array } {
  const total = new Float64Array(nGenes);
  const totalSq = new Float64Array(nGenes);
  for (let g = 0; g < nGroups; g++) {
    for (let j = 0; j < nGenes; j++) {
      total[j] += sum[g * nGenes + j];
      totalSq[j] += sumSq[g * nGenes + j];
    }
  }
  return { total, totalSq };
}

/** Validates labels against the groups (scanpy refuses groups of fewer than 2 cells); cells per group. */
function checkGroups(nRows: number, labels: Int32Array, groupNames: string[]): { groupSize: Float64Array; nLabelled: number } {
  const nGroups = groupNames.length;
  if (labels.length !== nRows) throw new Error(`rankGenesGroups: ${labels.length} labels for ${nRows} cells`);
  if (nGroups < 1 || nGroups > 1 << 20) throw new Error(`rankGenesGroups: unsupported number of groups ${nGroups}`);
  const groupSize = new Float64Array(nGroups);
  for (let r = 0; r < nRows; r++) {
    const g = labels[r];
    if (g < -1 || g >= nGroups) throw new Error(`rankGenesGroups: label ${g} of cell ${r} is outside -1..${nGroups - 1}`);
    if (g >= 0) groupSize[g]++;
  }
  const small = groupNames.filter((_, g) => groupSize[g] < 2);
  if (small.length > 0) {
    throw new Error(`rankGenesGroups: could not calculate statistics for groups ${small.join(", ")} since they contain fewer than 2 cells`);
  }
  let nLabelled = 0;
  for (let g = 0; g < nGroups; g++) nLabelled += groupSize[g];
  return { groupSize, nLabelled };
}

/** Gene indices by score descending; exact ties by larger index first (a reversed stable ascending sort). */
function orderByScoreDesc(score: Float64Array): Int32Array {
  return stableArgsort(score).reverse();
}

/** Indices that sort `key` ascending, equal keys in index order (bottom-up merge sort). */
function stableArgsort(key: Float64Array): Int32Array {
  const n = key.length;
  let a = new Int32Array(n);
  let b = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let o = lo;
      while (i < mid && j < hi) b[o++] = key[a[j]] < key[a[i]] ? a[j++] : a[i++];
      while (i < mid) b[o++] = a[i++];
      while (j < hi) b[o++] = a[j++];
    }
    const t = a;
    a = b;
    b = t;
  }
  return a;
}

/** Benjamini–Hochberg adjusted p-values, as statsmodels' multipletests(method='fdr_bh'). */
export function benjaminiHochberg(p: Float64Array): Float64Array {
  const n = p.length;
  const idx = stableArgsort(p);
  const out = new Float64Array(n);
  let running = Infinity;
  for (let k = n - 1; k >= 0; k--) {
    const i = idx[k];
    const v = p[i] / ((k + 1) / n);
    if (v < running) running = v;
    out[i] = Math.min(running, 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Distributions, float64.

const INV_SQRT_PI = 0.5641895835477563; // 1/sqrt(pi)

/**
 * erfc(x) for x >= 0 with small relative error into the far tail (until it underflows near
 * x ≈ 27). Below 3: 1 - erf(x) from erf's all-positive series
 * erf(x) = 2/√π e^{-x²} Σ (2x²)^n x / (2n+1)!!. From 3: Laplace's continued fraction
 * erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), by the modified Lentz method.
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) {
    const x2 = x * x;
    let term = x;
    let s = x;
    for (let n = 1; term > s * 1e-17; n++) {
      term *= (2 * x2) / (2 * n + 1);
      s += term;
    }
    return 1 - 2 * INV_SQRT_PI * Math.exp(-x2) * s;
  }
  if (x > 27.3) return 0;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = 1 / (x + a * d);
    c = x + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-x * x)) / f;
}

/** Two-sided p-value of a standard normal z: 2·sf(|z|) = erfc(|z|/√2). */
export function normalTwoSidedP(z: number): number {
  return erfc(Math.abs(z) * Math.SQRT1_2);
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  const xm = x - 1;
  let a = LANCZOS[0];
  const t = xm + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (xm + i);
  return 0.5 * Math.log(2 * Math.PI) + (xm + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta (Numerical Recipes' betacf, modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const TINY = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 100000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b); y = 1 - x given separately to keep its precision. */
export function betaIncReg(a: number, b: number, x: number, y = 1 - x): number {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  const lnFront = a * Math.log(x) + b * Math.log(y) - (lnGamma(a) + lnGamma(b) - lnGamma(a + b));
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, y)) / b;
}

/** Two-sided p-value of Student's t with df degrees of freedom: I_{df/(df+t²)}(df/2, 1/2). */
export function studentTwoSidedP(t: number, df: number): number {
  if (Number.isNaN(t) || Number.isNaN(df)) return NaN;
  if (!Number.isFinite(t)) return 0;
  const t2 = t * t;
  return betaIncReg(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
}

/** Welch's t and two-sided p, as scipy.stats.ttest_ind_from_stats(equal_var=False). */
export function welchTTest(m1: number, var1: number, n1: number, m2: number, var2: number, n2: number): { t: number; p: number; df: number } {
  const vn1 = var1 / n1;
  const vn2 = var2 / n2;
  let df = ((vn1 + vn2) * (vn1 + vn2)) / ((vn1 * vn1) / (n1 - 1) + (vn2 * vn2) / (n2 - 1));
  if (Number.isNaN(df)) df = 1;
  const t = (m1 - m2) / Math.sqrt(vn1 + vn2);
  return { t, p: studentTwoSidedP(t, df), df };
}

// ---------------------------------------------------------------------------------------------

/**
 * What scanpy stores in adata.uns['rank_genes_groups']: params and per-field record arrays over
 * the groups, each column the top nGenes (default all) in score order. Dtypes as scanpy's:
 * names strings, scores and logfoldchanges float32, pvals and pvals_adj float64.
 */
export function markersToUns(
  result: MarkerResult,
  geneNames: string[],
  groupby: string,
  opts: { method: string; tieCorrect: boolean; nGenes?: number },
): UnsValue {
  const nAll = result.order.length > 0 ? result.order[0].length : 0;
  const n = Math.min(opts.nGenes ?? nAll, nAll);
  const fields = result.groupNames.slice();
  const top = result.order.map((o) => o.subarray(0, n));
  const pick32 = (vals: Float64Array[]) => top.map((o, g) => Float32Array.from(o, (j) => vals[g][j]));
  const pick64 = (vals: Float64Array[]) => top.map((o, g) => Float64Array.from(o, (j) => vals[g][j]));
  return {
    params: {
      groupby,
      reference: "rest",
      method: opts.method,
      use_raw: false,
      corr_method: "benjamini-hochberg",
      tie_correct: opts.tieCorrect,
    },
    names: { recarray: { fields, columns: top.map((o) => Array.from(o, (j) => geneNames[j])) } },
    scores: { recarray: { fields, columns: pick32(result.scores) } },
    pvals: { recarray: { fields, columns: pick64(result.pvals) } },
    pvals_adj: { recarray: { fields, columns: pick64(result.pvalsAdj) } },
    logfoldchanges: { recarray: { fields, columns: pick32(result.logfoldchanges) } },
  };
}

// ---------------------------------------------------------------------------------------------
// GPU twin.

/** Most labelled nonzeros per gene chunk on the device (4 u32 buffers: 64 MiB). */
const GPU_KEY_BUDGET = 1 << 22;
/** Output positions per merge_pass invocation and run_sort's run length (K in kernels/markers.wgsl). */
const MERGE_OUTPUTS = 16;

/**
 * GPU twin of rankGenesGroupsCpu (kernels/markers.wgsl). The host lays out a chunk of genes'
 * nonzeros (labelled cells only) gene-major and group-major within a gene, as order-preserving
 * u32 keys; the device sorts each gene's keys (segmented merge sort), then per gene × group sums
 * the doubled average-tie ranks exactly (u64), and the values and squares in 64-bit fixed point,
 * and per gene Σ(t³ − t) over nonzero tie blocks and the count of negative values. The host adds
 * the zero block (one tie block between negatives and positives) and forms z / t, p-values, BH
 * and the ordering in float64 with the CPU twin's formulas. Rank and tie sums are exact, so the
 * Wilcoxon scores equal the CPU twin's; the fixed-point sums differ from its float64 sums only by
 * rounding (2^−F per term, F ≥ 30 for ~1e6 cells of log values).
 * Throws GpuError if one gene's labelled nonzeros, or one gene's groups, exceed a binding.
 */
export async function rankGenesGroupsGpu(
  gpu: Gpu,
  X: Csr,
  labels: Int32Array,
  groupNames: string[],
  opts: MarkerOptions,
): Promise<MarkerResult> {
  const nGroups = groupNames.length;
  const nGenes = X.nCols;
  if (opts.method !== "wilcoxon" && opts.method !== "t-test") throw new Error(`rankGenesGroups: unknown method ${String(opts.method)}`);
  const ranks = opts.method === "wilcoxon";
  const { groupSize, nLabelled: N } = checkGroups(X.nRows, labels, groupNames);

  // Labelled cells in (group, row) order, so that each gene's nonzeros come out group-major; stored
  // nonzeros per gene × group; largest |value| (sizes the fixed point).
  const rowsByGroup = new Int32Array(N);
  const groupFill = new Float64Array(nGroups);
  for (let g = 1; g < nGroups; g++) groupFill[g] = groupFill[g - 1] + groupSize[g - 1];
  const nz = new Float64Array(nGenes * nGroups);
  let vMax = 0;
  for (let r = 0; r < X.nRows; r++) {
    const g = labels[r];
    if (g < 0) continue;
    rowsByGroup[groupFill[g]++] = r;
    for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) {
      const v = X.data[k];
      if (v === 0) continue;
      nz[X.indices[k] * nGroups + g]++;
      vMax = Math.max(vMax, Math.abs(v));
    }
  }
  const nzPerGene = new Float64Array(nGenes);
  for (let j = 0; j < nGenes; j++) for (let g = 0; g < nGroups; g++) nzPerGene[j] += nz[j * nGroups + g];

  // F fractional bits with N · max(v², |v|) · 2^F < 2^62.
  const F = Math.max(0, Math.min(60, Math.floor(62 - Math.log2(Math.max(N * Math.max(vMax * vMax, vMax), 1)))));
  const fromFixed = (hi: number, lo: number) => hi * 2 ** (32 - F) + lo * 2 ** -F;

  const code = (await import("../../kernels/markers.wgsl")).default;
  const [runPipe, mergePipe, statsPipe, tiePipe] = await Promise.all(
    ["run_sort", "merge_pass", "group_stats", "tie_sums"].map((e) => gpu.pipeline(code, e)),
  );
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const cap = Math.min(GPU_KEY_BUDGET, Math.floor(limit / 4));
  // Per gene × group outputs are 8 bytes; group starts need one extra u32.
  const maxGenes = Math.floor(Math.floor(limit / 8) / nGroups);
  if (maxGenes < 1) throw new GpuError(`rankGenesGroupsGpu: ${nGroups} groups do not fit one ${limit}-byte binding`);

  const sum = new Float64Array(nGroups * nGenes);
  const sumSq = new Float64Array(nGroups * nGenes);
  const rankSum = new Float64Array(nGroups * nGenes);
  const tieSum = new Float64Array(nGenes);
  const nNeg = new Float64Array(nGenes);
  const cursor = Float64Array.from(X.indptr.subarray(0, X.nRows));
  const bits = new Uint32Array(X.data.buffer, X.data.byteOffset, X.data.length);
  const outUsage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;

  let j0 = 0;
  while (j0 < nGenes) {
    let j1 = j0;
    let n = 0;
    while (j1 < nGenes && j1 - j0 < maxGenes && n + nzPerGene[j1] <= cap) n += nzPerGene[j1++];
    if (j1 === j0) {
      throw new GpuError(`rankGenesGroupsGpu: gene ${j0} has ${nzPerGene[j0]} nonzeros, more than one ${limit}-byte binding holds`);
    }
    const genes = j1 - j0;
    const pairs = genes * nGroups;
    // Slots: the chunk's genes by decreasing nonzero count (ties by gene), so that the segments a
    // merge pass still has to merge are always a prefix of the layout (see the passes below).
    const geneAt = Uint32Array.from({ length: genes }, (_, t) => t).sort((a, b) => nzPerGene[j0 + b] - nzPerGene[j0 + a] || a - b);
    const slotOf = new Uint32Array(genes);
    geneAt.forEach((t, slot) => (slotOf[t] = slot));
    const segStart = new Uint32Array(genes + 1);
    const groupStart = new Uint32Array(pairs + 1);
    const geneOf = new Uint32Array(n);
    for (let slot = 0; slot < genes; slot++) {
      const t = geneAt[slot];
      for (let g = 0; g < nGroups; g++) groupStart[slot * nGroups + g + 1] = groupStart[slot * nGroups + g] + nz[(j0 + t) * nGroups + g];
      segStart[slot + 1] = groupStart[(slot + 1) * nGroups];
      geneOf.fill(slot, segStart[slot], segStart[slot + 1]);
    }
    const maxSeg = segStart[1];
    // Gather: rows in (group, row) order; each row's columns increase, so a cursor per row walks
    // through the chunks in order.
    const keys = new Uint32Array(n);
    const fill = new Uint32Array(genes * nGroups);
    for (let t = 0; t < genes; t++) for (let g = 0; g < nGroups; g++) fill[t * nGroups + g] = groupStart[slotOf[t] * nGroups + g];
    for (const r of rowsByGroup) {
      const end = X.indptr[r + 1];
      const g = labels[r];
      let k = cursor[r];
      for (; k < end && X.indices[k] < j1; k++) {
        if (X.data[k] === 0) continue;
        const b = bits[k];
        keys[fill[(X.indices[k] - j0) * nGroups + g]++] = b >= 0x80000000 ? 0xffffffff - b : b + 0x80000000;
      }
      cursor[r] = k;
    }

    const bufs: GPUBuffer[] = [];
    const keep = <T extends GPUBuffer>(b: T) => (bufs.push(b), b);
    try {
      const orig = keep(gpu.upload(keys, "markers.keys"));
      const segBuf = keep(gpu.upload(segStart, "markers.segStart"));
      const groupBuf = keep(gpu.upload(groupStart, "markers.groupStart"));
      const rankBuf = keep(gpu.createBuffer(pairs * 8, outUsage, "markers.rankSum"));
      const sumBuf = keep(gpu.createBuffer(pairs * 8, outUsage, "markers.sum"));
      const sqBuf = keep(gpu.createBuffer(pairs * 8, outUsage, "markers.sumSq"));
      const tieBuf = keep(gpu.createBuffer(genes * 8, outUsage, "markers.tie"));
      const negBuf = keep(gpu.createBuffer(genes * 4, outUsage, "markers.nNeg"));
      const steps: Step[] = [];
      let sorted = orig;
      if (ranks && maxSeg > 1) {
        const geneBuf = keep(gpu.upload(geneOf, "markers.geneOf"));
        const ping = [keep(gpu.createBuffer(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, "markers.sortA")),
          keep(gpu.createBuffer(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC, "markers.sortB"))];
        // Runs of MERGE_OUTPUTS sorted directly, then merged pairwise. The pass of width w only
        // touches the prefix of segments longer than w (slots by decreasing length), so each key
        // takes ⌈log2(its own segment / MERGE_OUTPUTS)⌉ passes, not the chunk's longest segment's.
        // Segments in (w, 2w] are finished by that pass in its destination; those left in ping[1]
        // are copied into ping[0] at the end (the later, shorter passes never write there).
        const active = (w: number) => {
          let slot = 0;
          while (slot < genes && segStart[slot + 1] - segStart[slot] > w) slot++;
          return segStart[slot];
        };
        const params = keep(gpu.uniforms({ u32: [n, 0] }));
        steps.push({ pipeline: runPipe, bindings: [params, sorted, ping[0], geneBuf, segBuf], workgroups: Math.ceil(n / 64) });
        sorted = ping[0];
        const copies: Step[] = [];
        for (let w = MERGE_OUTPUTS, pass = 1; w < maxSeg; w *= 2, pass++) {
          const dst = ping[pass % 2];
          const m = active(w);
          const params = keep(gpu.uniforms({ u32: [m, w] }));
          steps.push({ pipeline: mergePipe, bindings: [params, sorted, dst, geneBuf, segBuf], workgroups: Math.ceil(m / MERGE_OUTPUTS / 64) });
          const done = active(2 * w);
          if (dst === ping[1] && m > done) copies.push({ copy: { src: dst, srcOffset: done * 4, dst: ping[0], dstOffset: done * 4, size: (m - done) * 4 } });
          sorted = dst;
        }
        steps.push(...copies);
        sorted = ping[0];
      }
      // tie_sums also writes each sorted position's doubled rank, which group_stats sums.
      let rankAt = orig;
      if (ranks) {
        rankAt = keep(gpu.createBuffer(n * 4, GPUBufferUsage.STORAGE, "markers.rankAt"));
        const tieParams = keep(gpu.uniforms({ u32: [genes, N] }));
        steps.push({ pipeline: tiePipe, bindings: [tieParams, , sorted, segBuf, , tieBuf, negBuf, rankAt], workgroups: Math.ceil(genes / 64) });
      }
      const statParams = keep(gpu.uniforms({ u32: [pairs, nGroups, N, ranks ? 1 : 0], f32: [2 ** (F - 32)] }));
      steps.push({
        pipeline: statsPipe,
        bindings: [statParams, orig, sorted, segBuf, groupBuf, rankBuf, sumBuf, sqBuf, rankAt],
        workgroups: Math.ceil(pairs / 64),
      });
      await gpu.run("markers", steps);
      const [rb, sb, qb, tb, nb] = await gpu.readbackAll([
        { buffer: rankBuf, byteLength: pairs * 8 },
        { buffer: sumBuf, byteLength: pairs * 8 },
        { buffer: sqBuf, byteLength: pairs * 8 },
        { buffer: tieBuf, byteLength: ranks ? genes * 8 : 4 },
        { buffer: negBuf, byteLength: ranks ? genes * 4 : 4 },
      ]);
      // Words as (hi, lo) pairs; the fixed-point high words are signed.
      const rw = new Uint32Array(rb);
      const sHi = new Int32Array(sb);
      const sLo = new Uint32Array(sb);
      const qHi = new Int32Array(qb);
      const qLo = new Uint32Array(qb);
      const tw = new Uint32Array(tb);
      const nw = new Uint32Array(nb);
      for (let slot = 0; slot < genes; slot++) {
        const j = j0 + geneAt[slot];
        for (let g = 0; g < nGroups; g++) {
          const p = slot * nGroups + g;
          const o = g * nGenes + j;
          sum[o] = fromFixed(sHi[2 * p], sLo[2 * p + 1]);
          sumSq[o] = fromFixed(qHi[2 * p], qLo[2 * p + 1]);
          rankSum[o] = (rw[2 * p] * 2 ** 32 + rw[2 * p + 1]) / 2;
        }
        if (ranks) {
          tieSum[j] = tw[2 * slot] * 2 ** 32 + tw[2 * slot + 1];
          nNeg[j] = nw[slot];
        }
      }
    } finally {
      for (const b of bufs) b.destroy();
    }
    j0 = j1;
  }

  // Host: the CPU twin's formulas (finishGenes), in float64.
  const out = emptyResult(groupNames, nGenes);
  let rankSums: RankSums | undefined;
  if (ranks) {
    const nzInGroup = new Float64Array(nGroups * nGenes);
    for (let j = 0; j < nGenes; j++) for (let g = 0; g < nGroups; g++) nzInGroup[g * nGenes + j] = nz[j * nGroups + g];
    rankSums = { rankSum, nzInGroup, nzPerGene, tieSum, nNeg };
  }
  finishGenes(out, 0, nGenes, groupSize, N, opts.tieCorrect, sum, sumSq, rankSums);
  return finishResult(out);
}
