// The bench's own logic (dataset discovery, accuracy matching by barcode), without running the bench.
import { describe, expect, it } from "vitest";
import { compare, loadReference, type Comparable } from "../bench/accuracy.js";
import { join } from "node:path";
import { countCells, parseSize, referenceDatasets } from "../bench/datasets.js";
import { datasetDir, readTsv, referenceDir } from "./helpers/reference.js";

/** The same run with its cells listed in another order (neighbour lists renumbered). */
function permuted(c: Comparable, perm: number[]): Comparable {
  const inv = new Array<number>(perm.length);
  perm.forEach((old, nu) => (inv[old] = nu));
  const k = c.knnK;
  return {
    ...c,
    barcodes: perm.map((o) => c.barcodes[o]),
    pcs10: perm.flatMap((o) => c.pcs10.slice(o * 10, o * 10 + 10)),
    knn: perm.flatMap((o) => c.knn.slice(o * k, o * k + k).map((j) => inv[j])),
    clusters: perm.map((o) => c.clusters[o]),
  };
}

describe("bench", () => {
  it("parses sizes", () => {
    expect(parseSize("50k")).toBe(50_000);
    expect(parseSize("1M")).toBe(1_000_000);
    expect(parseSize("2500")).toBe(2500);
    expect(() => parseSize("ten")).toThrow();
  });

  it("counts a 10x directory's cells (the repeat policy's size) as the reference's QC table lists them", () => {
    const qc = readTsv(join(referenceDir("pbmc3k"), "qc.tsv.gz"));
    expect(countCells(datasetDir("pbmc3k"))).toBe(qc.rows.length);
  });

  it("finds the reference datasets with their QC thresholds", () => {
    const ds = referenceDatasets();
    const by = new Map(ds.map((d) => [d.name, d]));
    expect(by.get("pbmc3k")).toMatchObject({ minGenes: 200, minCells: 3, maxGenes: 2500, maxPctMt: 5 });
    expect(by.get("pbmc3k")?.labels?.column).toBe("cell_type");
    expect(by.get("kang2018_ctrl_5donors")?.labels?.column).toBe("cell_type");
    expect(by.get("pbmc_1k_three_chemistries/v1_5prime")).toMatchObject({ maxGenes: 5000, maxPctMt: 20 });
    expect(by.get("citeseq_eccite_pbmc_ctrl500")?.maxPctMt).toBe(15);
    expect(by.get("synthetic3k")?.labels?.what).toBe("truth");
    expect(ds.every((d) => d.refDir !== undefined)).toBe(true);
  });

  it("matches cells by barcode: the reference against itself, reordered, agrees fully", () => {
    const ref = loadReference(referenceDir("pbmc3k"));
    expect(ref.barcodes.length).toBe(2638);
    expect(ref.hvgFeatureIndex.length).toBe(2000);
    expect(ref.knnK).toBe(15);
    const n = ref.barcodes.length;
    const perm = Array.from({ length: n }, (_, i) => (i * 7919) % n); // 7919 is prime, coprime to 2638
    const a = compare(permuted(ref, perm), ref);
    expect(a.common_cells).toBe(n);
    expect(a.hvg_jaccard).toBe(1);
    expect(a.pc10_subspace).toBeCloseTo(1, 10);
    expect(a.knn15_recall).toBe(1);
    expect(a.ari_clusters).toBeCloseTo(1, 12);
    expect(a.marker_top25_overlap).toBe(1);
  });

  it("detects disagreement: shuffled clusters and a shifted kNN list score low", () => {
    const ref = loadReference(referenceDir("pbmc3k"));
    const n = ref.barcodes.length;
    const bad: Comparable = {
      ...ref,
      clusters: ref.clusters.map((_, i) => ref.clusters[(i * 7919) % n]),
      knn: ref.knn.map((j, t) => (t % 15 === 0 ? j : (j + 1) % n)), // keep self, move every neighbour
    };
    const a = compare(bad, ref);
    expect(a.ari_clusters).toBeLessThan(0.05);
    expect(a.knn15_recall).toBeLessThan(0.3);
  });
});
