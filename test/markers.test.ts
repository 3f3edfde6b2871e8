/**
 * Marker genes (rank_genes_groups) against the scanpy-like reference on pbmc3k and kang2018, using
 * the reference's own QC cells and Leiden labels; t-test and the distributions against scipy values.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fromDense, type Csr } from "../src/core/csr.js";
import {
  benjaminiHochberg,
  markersToUns,
  normalTwoSidedP,
  rankGenesGroupsBlockedCpu,
  rankGenesGroupsCpu,
  studentTwoSidedP,
  type MarkerOptions,
  type MarkerResult,
} from "../src/ops/markers.js";
import { mulberry32 } from "../src/core/random.js";
import { readTsv, referenceDir } from "./helpers/reference.js";
import { referenceLeidenLabels, referenceQcInput } from "./helpers/referenceInput.js";

interface Prepared {
  X: Csr;
  featureIndex: Int32Array;
  geneNames: string[];
  labels: Int32Array;
  groupNames: string[];
}

/** The reference's QC cells, log-normalized, on the genes kept by filter_genes(min_cells=3). */
function prepare(dataset: string): Prepared {
  const d = referenceQcInput(dataset);
  const { labels, groupNames } = referenceLeidenLabels(dataset, d.barcodes);
  return { X: d.logNorm, featureIndex: Int32Array.from(d.featureIndex), geneNames: d.geneNames, labels, groupNames };
}

function compareToReference(dataset: string, p: Prepared, tc: MarkerResult, noTc: MarkerResult) {
  const ref = readTsv(join(referenceDir(dataset), "markers.tsv.gz"));
  const group = ref.col("group");
  const fidx = ref.num("feature_index");
  const rank = ref.num("rank");
  const sc = ref.num("scores");
  const scOther = ref.num("scores_other_tie_mode");
  const lfc = ref.num("logfoldchanges");
  const pv = ref.num("pvals");
  const pAdj = ref.num("pvals_adj");
  const geneOf = new Map(Array.from(p.featureIndex, (f, j) => [f, j] as const));
  const gi = new Map(p.groupNames.map((g, i) => [g, i] as const));
  const groupSize = p.groupNames.map((_, g) => p.labels.filter((l) => l === g).length);
  const N = p.labels.length;
  const r = {
    maxScore: 0, maxOther: 0, maxLfc: 0, maxRankSum: 0, compared: 0,
    /** our p vs the reference's p, and the rows beyond 1e-3 relative */
    maxP: 0, nPOver: 0, nPTested: 0,
    /** |ln(p/p_ref)| beyond what the score difference explains (d ln p / dz = -z in the tail) */
    maxPUnexplained: 0,
    /** our p evaluated at the reference's own (float32) score vs the reference's p */
    maxPAtRefScore: 0,
    maxPadjUnexplained: 0,
    /** reference top-25 feature indices and their reference scores, per group */
    refTop: p.groupNames.map(() => [] as number[]),
    refScore: new Map<string, number>(),
  };
  const groupLnErr = new Float64Array(p.groupNames.length);
  const rowsAdj: [number, number, number][] = [];
  for (let i = 0; i < group.length; i++) {
    const g = gi.get(group[i])!;
    const j = geneOf.get(fidx[i])!;
    expect(j, `feature ${fidx[i]}`).toBeDefined();
    r.compared++;
    const dz = Math.abs(tc.scores[g][j] - sc[i]);
    r.maxScore = Math.max(r.maxScore, dz);
    r.maxOther = Math.max(r.maxOther, Math.abs(noTc.scores[g][j] - scOther[i]));
    r.maxLfc = Math.max(r.maxLfc, Math.abs(tc.logfoldchanges[g][j] - lfc[i]));
    // Rank sums recovered from the untied z: R = z·sqrt(n1 n2 (N+1)/12) + n1 (N+1)/2.
    const n1 = groupSize[g];
    const sd = Math.sqrt((n1 * (N - n1) * (N + 1)) / 12);
    r.maxRankSum = Math.max(r.maxRankSum, Math.abs((noTc.scores[g][j] - scOther[i]) * sd));
    if (pv[i] > 1e-300) {
      r.nPTested++;
      const rel = Math.abs(tc.pvals[g][j] - pv[i]) / pv[i];
      r.maxP = Math.max(r.maxP, rel);
      if (rel > 1e-3) r.nPOver++;
      const explained = 1.05 * Math.abs(sc[i]) * dz;
      r.maxPUnexplained = Math.max(r.maxPUnexplained, Math.abs(Math.log(tc.pvals[g][j] / pv[i])) - explained);
      r.maxPAtRefScore = Math.max(r.maxPAtRefScore, Math.abs(normalTwoSidedP(sc[i]) - pv[i]) / pv[i]);
    }
    if (pv[i] > 1e-300) groupLnErr[g] = Math.max(groupLnErr[g], Math.abs(Math.log(tc.pvals[g][j] / pv[i])));
    if (pAdj[i] > 1e-300) rowsAdj.push([g, j, pAdj[i]]);
    if (rank[i] <= 25) r.refTop[g][rank[i] - 1] = fidx[i];
    r.refScore.set(`${g}:${fidx[i]}`, sc[i]);
  }
  // BH is a running minimum of p·n/rank over genes: its log error is bounded by the group's largest
  // log error of p.
  for (const [g, j, ref] of rowsAdj) {
    r.maxPadjUnexplained = Math.max(r.maxPadjUnexplained, Math.abs(Math.log(tc.pvalsAdj[g][j] / ref)) - groupLnErr[g]);
  }
  return r;
}

for (const dataset of ["pbmc3k", "kang2018_ctrl_5donors"]) {
  describe(`rank_genes_groups wilcoxon vs scanpy_like: ${dataset}`, () => {
    it("scores (both tie modes), logfoldchanges, p-values and top 25 genes match", () => {
      const p = prepare(dataset);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const tc = rankGenesGroupsCpu(p.X, p.labels, p.groupNames, { method: "wilcoxon", tieCorrect: true });
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      const noTc = rankGenesGroupsCpu(p.X, p.labels, p.groupNames, { method: "wilcoxon", tieCorrect: false });
      const r = compareToReference(dataset, p, tc, noTc);
      console.log(`${dataset}: ${p.X.nRows} cells x ${p.X.nCols} genes x ${p.groupNames.length} groups, wilcoxon ${ms.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms cpu; ` +
        `rows ${r.compared}; max |dscore| ${r.maxScore.toExponential(2)}, other tie mode ${r.maxOther.toExponential(2)}, ` +
        `|dR| ${r.maxRankSum.toFixed(2)}, |dlfc| ${r.maxLfc.toExponential(2)}; p: max rel ${r.maxP.toExponential(2)}, ` +
        `${r.nPOver}/${r.nPTested} rows > 1e-3, unexplained by dz ${r.maxPUnexplained.toExponential(2)}, at ref score ${r.maxPAtRefScore.toExponential(2)}; ` +
        `p_adj unexplained ${r.maxPadjUnexplained.toExponential(2)}`);
      expect(r.compared).toBe(p.X.nCols * p.groupNames.length);
      expect(r.maxScore).toBeLessThan(1e-3);
      expect(r.maxOther).toBeLessThan(1e-3);
      expect(r.maxLfc).toBeLessThan(1e-3);
      expect(r.maxPAtRefScore).toBeLessThan(1e-3);
      expect(r.maxPUnexplained).toBeLessThan(1e-3);
      expect(r.maxPadjUnexplained).toBeLessThan(1e-3);
      expect(r.nPOver / r.nPTested).toBeLessThan(0.01);
      // Top 25 identical, except that genes with exactly equal reference scores may trade places
      // (scanpy's argsort leaves ties unordered; ours puts the larger gene index first), also
      // across rank 25.
      p.groupNames.forEach((_, g) => {
        const ours = Array.from(tc.order[g].subarray(0, 25), (j) => p.featureIndex[j]);
        ours.forEach((f, k) => {
          if (f !== r.refTop[g][k]) expect(r.refScore.get(`${g}:${f}`), `group ${p.groupNames[g]} rank ${k + 1}`).toBe(r.refScore.get(`${g}:${r.refTop[g][k]}`));
        });
      });
    });
  });
}

describe("rank_genes_groups on a small matrix vs scipy 1.17.1", () => {
  // 14 cells x 6 genes: zero block, ties, negative values, a gene all zero, a gene constant within
  // groups, and one excluded cell (label -1) whose values would change every statistic.
  const dense = [
    [0, 1.5, 0, 2.0, 0, -0.5],
    [0, 1.5, 0, 2.0, 0.25, 0],
    [0.5, 2.5, 0, 2.0, 0, 1.0],
    [1.0, 0, 0, 2.0, 0.25, 1.0],
    [0, 1.5, 0, 2.0, 0.5, 0],
    [0.5, 0, 0, 1.0, 0, -0.5],
    [2.0, 0.75, 0, 1.0, 1.5, 0],
    [0, 0, 0, 1.0, 0, 3.0],
    [3.0, 0.75, 0, 1.0, 0, 0],
    [0, 0.25, 0, 1.0, 2.0, 0],
    [0.5, 0, 0, 1.0, 0, -1.0],
    [0, 0, 0, 1.0, 0.25, 0.5],
    [9.0, 9.0, 9.0, 9.0, 9.0, 9.0],
    [0, 0.25, 0, 1.0, 0, 0],
  ];
  const X = fromDense(dense.flat(), 14, 6);
  const labels = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, -1, 2]);
  const names = ["a", "b", "c"];
  // scipy.stats.ttest_ind(group, rest, equal_var=False) per gene (NaN -> score 0, p 1 as scanpy).
  const tExpected = [
    [-1.0044385482213558, 2.761736494580807, 0, Infinity, -0.8954170345361268, 0.09648062312349495],
    [1.6491512849102477, -1.2147467868233122, 0, -3.1622776601683795, 0.032207831320041555, 0.6196863885840589],
    [-1.7359846096098266, -2.7331222222112688, 0, -3.1622776601683795, 0.55850847150978, -1.1772086817114393],
  ];
  const pTExpected = [
    [0.33920312516747664, 0.04271598377777686, 1, 0.0, 0.3954499221147867, 0.9248802448515159],
    [0.19231611030517778, 0.2502942617261211, 1, 0.013349063426018711, 0.9755407657814218, 0.574013658777905],
    [0.11411784544951026, 0.023280814732088966, 1, 0.013349063426018711, 0.6084605972830109, 0.2667015599305398],
  ];
  // z from scipy.stats.rankdata / tiecorrect; p from scipy.stats.mannwhitneyu(use_continuity=False,
  // method='asymptotic'), which is tie-corrected.
  const zTc = [
    [-0.4805424566378906, 2.1267526708756996, 0, 3.4641016151377544, 0.3203616377585937, 0.5405569672683771],
    [1.6884540837649262, -0.8006407690254357, 0, -1.8257418583505538, -0.6753816335059705, 0.08139958198291232],
    [-1.1819178586354484, -1.4411533842457842, 0, -1.8257418583505538, 0.33769081675298523, -0.6511966558632986],
  ];
  const pMwu = [
    [0.6308417213038372, 0.03344063866399787, 1.0, 0.0005320055051392492, 0.7486942029213925, 0.5888129855268707],
    [0.09132409599435823, 0.42333964158244364, 1.0, 0.06788915486182899, 0.49943333129368195, 0.9351241815385021],
    [0.23723829514144923, 0.14954135458461512, 1.0, 0.06788915486182899, 0.7355961958308077, 0.5149195488019918],
  ];
  const zNoTc = [
    [-0.43915503282683993, 2.04939015319192, 0, 2.9277002188455996, 0.29277002188455997, 0.51234753829798],
    [1.543033499620919, -0.7715167498104595, 0, -1.543033499620919, -0.6172133998483676, 0.07715167498104596],
    [-1.0801234497346432, -1.3887301496588271, 0, -1.543033499620919, 0.3086066999241838, -0.6172133998483676],
  ];
  // numpy: log2((expm1(mean_g) + 1e-9) / (expm1(mean_rest) + 1e-9)); NaN where the ratio is negative.
  const lfc = [
    [-1.6747844878683116, 3.4271748612041866, 0.0, 1.894636123358204, -1.4334613082964578, 0.30075277201627565],
    [3.5698538471915944, -1.5156829968617758, 0.0, -1.121190988136669, 0.06507968984304027, 2.885208909114028],
    [-3.143553059867612, -3.5609285928145638, 0.0, -1.121190988136669, 1.2376402645395235, NaN],
  ];
  const close = (a: number, b: number, rel: number) =>
    Number.isNaN(b) ? Number.isNaN(a) : !Number.isFinite(b) ? a === b : Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-300);

  it("t-test: Welch t, p from Student's t with Welch–Satterthwaite df, logfoldchanges", () => {
    const r = rankGenesGroupsCpu(X, labels, names, { method: "t-test", tieCorrect: false });
    for (let g = 0; g < 3; g++) {
      for (let j = 0; j < 6; j++) {
        expect(close(r.scores[g][j], tExpected[g][j], 1e-12), `t g${g} j${j}: ${r.scores[g][j]}`).toBe(true);
        expect(close(r.pvals[g][j], pTExpected[g][j], 1e-11), `p g${g} j${j}: ${r.pvals[g][j]}`).toBe(true);
        expect(close(r.logfoldchanges[g][j], lfc[g][j], 1e-12), `lfc g${g} j${j}`).toBe(true);
      }
    }
  });

  it("wilcoxon: z with and without tie correction, p as scipy's Mann–Whitney U", () => {
    const tc = rankGenesGroupsCpu(X, labels, names, { method: "wilcoxon", tieCorrect: true });
    const raw = rankGenesGroupsCpu(X, labels, names, { method: "wilcoxon", tieCorrect: false });
    for (let g = 0; g < 3; g++) {
      for (let j = 0; j < 6; j++) {
        expect(close(tc.scores[g][j], zTc[g][j], 1e-12), `z g${g} j${j}`).toBe(true);
        expect(close(tc.pvals[g][j], pMwu[g][j], 1e-12), `p g${g} j${j}`).toBe(true);
        expect(close(raw.scores[g][j], zNoTc[g][j], 1e-12), `raw z g${g} j${j}`).toBe(true);
        expect(close(tc.logfoldchanges[g][j], lfc[g][j], 1e-12)).toBe(true);
      }
      // ties in score: larger gene index first, as scanpy's reversed argsort
      const o = Array.from(tc.order[g]);
      for (let k = 1; k < 6; k++) {
        const [a, b] = [o[k - 1], o[k]];
        expect(tc.scores[g][a] > tc.scores[g][b] || (tc.scores[g][a] === tc.scores[g][b] && a > b)).toBe(true);
      }
    }
  });

  it("a group with fewer than 2 cells is refused, as in scanpy", () => {
    const l = Int32Array.from(labels);
    l[5] = l[6] = l[7] = 0;
    expect(() => rankGenesGroupsCpu(X, l, names, { method: "wilcoxon", tieCorrect: false })).toThrow(/fewer than 2 cells/);
  });

  it("markersToUns: scanpy's layout and dtypes, top nGenes in score order", () => {
    const r = rankGenesGroupsCpu(X, labels, names, { method: "wilcoxon", tieCorrect: true });
    const genes = ["g0", "g1", "g2", "g3", "g4", "g5"];
    const u = markersToUns(r, genes, "leiden", { method: "wilcoxon", tieCorrect: true, nGenes: 2 }) as Record<string, any>;
    expect(u.params).toEqual({
      groupby: "leiden", reference: "rest", method: "wilcoxon", use_raw: false,
      corr_method: "benjamini-hochberg", tie_correct: true,
    });
    // group a: highest z are g3 (3.46) then g1 (2.13)
    expect(u.names.recarray.fields).toEqual(names);
    expect(u.names.recarray.columns[0]).toEqual(["g3", "g1"]);
    expect(u.scores.recarray.columns[0]).toBeInstanceOf(Float32Array);
    expect(u.logfoldchanges.recarray.columns[0]).toBeInstanceOf(Float32Array);
    expect(u.pvals.recarray.columns[0]).toBeInstanceOf(Float64Array);
    expect(u.pvals_adj.recarray.columns[0]).toBeInstanceOf(Float64Array);
    expect(u.scores.recarray.columns[0][0]).toBeCloseTo(3.4641016151377544, 6);
    expect(u.pvals.recarray.columns[0][1]).toBeCloseTo(0.03344063866399787, 12);
    const all = markersToUns(r, genes, "leiden", { method: "wilcoxon", tieCorrect: true }) as Record<string, any>;
    expect(all.names.recarray.columns[2]).toHaveLength(6);
  });
});

describe("distributions and BH", () => {
  it("normal two-sided p far into the tail (scipy 2*norm.sf)", () => {
    const cases: [number, number][] = [
      [1.5, 0.13361440253771614], [2.9, 0.003731626600768075], [3.5, 0.00046525815807105003],
      [8, 1.244192114854348e-15], [20, 5.507248237212311e-89], [32.12762, 1.8144341415128047e-226],
      [37.5, 9.210706019163908e-308],
    ];
    for (const [z, p] of cases) expect(Math.abs(normalTwoSidedP(-z) - p) / p, `z=${z}`).toBeLessThan(1e-11);
  });
  it("Student t two-sided p (scipy 2*t.sf)", () => {
    const cases: [number, number, number][] = [
      [2, 10, 0.07338803477074037], [0.1, 3, 0.9266523488008059], [1, 1, 0.5], [3, 2.5, 0.07257609554903183],
      [5, 100, 2.450173413503802e-06], [20, 2000, 2.871589689613094e-81], [40, 2500.5, 6.931411102252363e-271],
      [8, 7.3, 7.261973208191443e-05], [100, 30, 1.984611796727031e-39],
    ];
    for (const [t, df, p] of cases) expect(Math.abs(studentTwoSidedP(t, df) - p) / p, `t=${t} df=${df}`).toBeLessThan(1e-11);
  });
  it("Benjamini–Hochberg (scipy.stats.false_discovery_control)", () => {
    const adj = benjaminiHochberg(Float64Array.from([0.01, 0.04, 0.03, 0.005, 0.9, 0.9, 0.2]));
    const want = [0.035, 0.07, 0.07, 0.035, 0.9, 0.9, 0.28];
    want.forEach((w, i) => expect(adj[i]).toBeCloseTo(w, 14));
  });
});

describe("wilcoxon on a matrix larger than one sort chunk", () => {
  it("matches a plain dense rank-sum computation on every gene", () => {
    // 3200 cells x 1600 genes, ~4.7M nonzeros in labelled cells (more than the 2^22 sorted at
    // once), with ties, negatives and excluded cells; seeded.
    let s = 12345;
    const rand = () => {
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const nCells = 3200, nGenes = 1600, nGroups = 4;
    const labels = Int32Array.from({ length: nCells }, () => Math.floor(rand() * (nGroups + 0.2)) - (rand() < 0.03 ? 99 : 0)).map((l) => (l < 0 || l >= nGroups ? -1 : l));
    const dense = new Float32Array(nCells * nGenes);
    for (let i = 0; i < dense.length; i++) {
      const u = rand();
      const g = labels[Math.floor(i / nGenes)];
      dense[i] = u < 0.001 ? 0 : u < 0.02 ? -Math.round(u * 400) / 8 : Math.round((u + 0.05 * g) * 40) / 8;
    }
    const X = fromDense(dense, nCells, nGenes);
    let labelledNnz = 0;
    for (let r = 0; r < nCells; r++) if (labels[r] >= 0) labelledNnz += X.indptr[r + 1] - X.indptr[r];
    expect(labelledNnz).toBeGreaterThan(1 << 22);
    const names = ["a", "b", "c", "d"];
    const res = rankGenesGroupsCpu(X, labels, names, { method: "wilcoxon", tieCorrect: true });
    const cells = Array.from({ length: nCells }, (_, i) => i).filter((i) => labels[i] >= 0);
    const N = cells.length;
    const size = names.map((_, g) => cells.filter((i) => labels[i] === g).length);
    let maxDiff = 0;
    for (let j = 0; j < nGenes; j++) {
      const col = cells.map((i) => ({ v: dense[i * nGenes + j], g: labels[i] })).sort((a, b) => a.v - b.v);
      const rankSum = new Float64Array(nGroups);
      let tie = 0;
      for (let i = 0; i < N; ) {
        let e = i;
        while (e < N && col[e].v === col[i].v) e++;
        for (let q = i; q < e; q++) rankSum[col[q].g] += (i + 1 + e) / 2;
        tie += (e - i) ** 3 - (e - i);
        i = e;
      }
      const tc = 1 - tie / (N ** 3 - N);
      for (let g = 0; g < nGroups; g++) {
        const n1 = size[g];
        const z = (rankSum[g] - (n1 * (N + 1)) / 2) / Math.sqrt((tc * n1 * (N - n1) * (N + 1)) / 12);
        maxDiff = Math.max(maxDiff, Math.abs(res.scores[g][j] - z));
      }
    }
    expect(maxDiff).toBeLessThan(1e-9);
  });
});

describe("rankGenesGroupsBlockedCpu: gene blocks give the unblocked result byte for byte", () => {
  /** Columns [j0, j1) of X with block-local column indices (written here, independently of src). */
  function columnBlock(X: Csr, j0: number, j1: number): Csr {
    const idx: number[] = [];
    const val: number[] = [];
    const indptr = new Float64Array(X.nRows + 1);
    for (let r = 0; r < X.nRows; r++) {
      for (let k = X.indptr[r]; k < X.indptr[r + 1]; k++) {
        if (X.indices[k] >= j0 && X.indices[k] < j1) {
          idx.push(X.indices[k] - j0);
          val.push(X.data[k]);
        }
      }
      indptr[r + 1] = idx.length;
    }
    return { nRows: X.nRows, nCols: j1 - j0, indptr, indices: Uint32Array.from(idx), data: Float32Array.from(val) };
  }

  /** Random cells × genes with empty cells, genes never expressed, exact ties, negatives, stored zeros; labels with -1. */
  function randomCase(nCells: number, nGenes: number, nGroups: number, seed: number) {
    const rand = mulberry32(seed);
    const dense = new Float32Array(nCells * nGenes);
    const rate = Float64Array.from({ length: nGenes }, () => (rand() < 0.15 ? 0 : rand() * 0.6));
    for (let r = 0; r < nCells; r++) {
      if (rand() < 0.08) continue; // empty cell
      for (let j = 0; j < nGenes; j++) {
        if (rand() >= rate[j]) continue;
        const u = rand();
        // coarse values tie often; some negatives; the rest continuous log-like values
        dense[r * nGenes + j] = u < 0.3 ? Math.round(u * 20) / 4 : u < 0.4 ? -Math.round(u * 10) / 4 : Math.log1p(u * 40);
      }
    }
    const X = fromDense(dense, nCells, nGenes);
    // a few stored zeros, which count as zeros
    for (let k = 0; k < X.data.length; k += 17) X.data[k] = 0;
    const labels = Int32Array.from({ length: nCells }, () => (rand() < 0.1 ? -1 : Math.floor(rand() * nGroups)));
    for (let g = 0; g < nGroups; g++) labels[2 * g] = labels[2 * g + 1] = g;
    return { X, labels, names: Array.from({ length: nGroups }, (_, g) => `c${g}`) };
  }

  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const MODES: MarkerOptions[] = [
    { method: "wilcoxon", tieCorrect: true },
    { method: "wilcoxon", tieCorrect: false },
    { method: "t-test", tieCorrect: false },
  ];

  it.each([
    [300, 61, 5, 101],
    [120, 200, 9, 102],
    [40, 17, 2, 103],
  ])("%i cells x %i genes, %i groups (seed %i): block sizes 1, 7, 13, 64, all, more than all", (nCells, nGenes, nGroups, seed) => {
    const { X, labels, names } = randomCase(nCells, nGenes, nGroups, seed);
    // the case really has what it claims
    const expressed = new Set(Array.from(X.indices.subarray(0, X.indptr[nCells])));
    expect(expressed.size).toBeLessThan(nGenes);
    expect(Array.from({ length: nCells }, (_, r) => X.indptr[r + 1] - X.indptr[r]).some((n) => n === 0)).toBe(true);
    expect(labels.includes(-1)).toBe(true);
    expect(Array.from(X.data).some((v) => v < 0)).toBe(true);
    for (const opts of MODES) {
      const whole = rankGenesGroupsCpu(X, labels, names, opts);
      for (const blockGenes of [1, 7, 13, 64, nGenes, nGenes + 5]) {
        const calls: [number, number][] = [];
        const blocked = rankGenesGroupsBlockedCpu(nCells, nGenes, (j0, j1) => {
          calls.push([j0, j1]);
          return columnBlock(X, j0, j1);
        }, blockGenes, labels, names, opts);
        // blocks in gene order, each once, covering all genes
        const want = Array.from({ length: Math.ceil(nGenes / blockGenes) }, (_, b) => [b * blockGenes, Math.min(nGenes, (b + 1) * blockGenes)]);
        expect(calls).toEqual(want);
        expect(blocked.groupNames).toEqual(names);
        for (let g = 0; g < names.length; g++) {
          for (const k of ["scores", "pvals", "pvalsAdj", "logfoldchanges", "order"] as const) {
            expect(blocked[k][g].length, `${k}`).toBe(nGenes);
            expect(Buffer.compare(bytes(blocked[k][g]), bytes(whole[k][g])), `${opts.method} tc=${opts.tieCorrect} block ${blockGenes} ${k} group ${g}`).toBe(0);
          }
        }
      }
    }
  });

  it("blocked wilcoxon matches a plain dense rank-sum computation (blocks of 5 genes)", () => {
    const { X, labels, names } = randomCase(150, 23, 3, 104);
    const res = rankGenesGroupsBlockedCpu(150, 23, (j0, j1) => columnBlock(X, j0, j1), 5, labels, names, { method: "wilcoxon", tieCorrect: true });
    const cells = Array.from({ length: 150 }, (_, i) => i).filter((i) => labels[i] >= 0);
    const N = cells.length;
    let maxDiff = 0;
    for (let j = 0; j < 23; j++) {
      const value = (i: number) => {
        for (let k = X.indptr[i]; k < X.indptr[i + 1]; k++) if (X.indices[k] === j) return X.data[k];
        return 0;
      };
      const col = cells.map((i) => ({ v: value(i), g: labels[i] })).sort((a, b) => a.v - b.v);
      const rankSum = new Float64Array(3);
      let tie = 0;
      for (let i = 0; i < N; ) {
        let e = i;
        while (e < N && col[e].v === col[i].v) e++;
        for (let q = i; q < e; q++) rankSum[col[q].g] += (i + 1 + e) / 2;
        tie += (e - i) ** 3 - (e - i);
        i = e;
      }
      const tc = 1 - tie / (N ** 3 - N);
      for (let g = 0; g < 3; g++) {
        const n1 = cells.filter((i) => labels[i] === g).length;
        const z = (rankSum[g] - (n1 * (N + 1)) / 2) / Math.sqrt((tc * n1 * (N - n1) * (N + 1)) / 12);
        maxDiff = Math.max(maxDiff, Math.abs(res.scores[g][j] - (Number.isNaN(z) ? 0 : z)));
      }
    }
    expect(maxDiff).toBeLessThan(1e-12);
  });

  it("refuses a block of the wrong shape, a bad blockGenes, and labels that do not match nRows", () => {
    const { X, labels, names } = randomCase(40, 10, 2, 105);
    const opts: MarkerOptions = { method: "wilcoxon", tieCorrect: true };
    expect(() => rankGenesGroupsBlockedCpu(40, 10, (j0, j1) => columnBlock(X, j0, j1 + 1), 4, labels, names, opts)).toThrow(/block of genes 0\.\.4/);
    expect(() => rankGenesGroupsBlockedCpu(40, 10, (j0, j1) => columnBlock(X, j0, j1), 0, labels, names, opts)).toThrow(/blockGenes/);
    expect(() => rankGenesGroupsBlockedCpu(41, 10, (j0, j1) => columnBlock(X, j0, j1), 4, labels, names, opts)).toThrow(/40 labels for 41 cells/);
  });
});
