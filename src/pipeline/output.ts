/**
 * Writes an analysis to a directory atomically: everything goes to a sibling temp directory that
 * is renamed into place only when all files are written, so a failure leaves no output behind.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { writeCellsArrow } from "../io/arrow.js";
import { writeH5ad } from "../io/h5ad.js";
import type { AnalyzeOutput } from "./analyze.js";

export async function writeOutputDir(outDir: string, out: AnalyzeOutput, summary: object): Promise<void> {
  const target = resolve(outDir);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    await writeH5ad(join(tmp, "analysis.h5ad"), out.result);
    const obs = out.result.obs;
    const num = (name: string) => {
      const c = obs.columns.get(name);
      if (!c || c.kind !== "number") throw new Error(`obs column ${name} missing`);
      return c.values;
    };
    const n = out.nCells;
    const k = out.pcaScores.length / n;
    const column = (src: Float32Array, stride: number, j: number) => {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = src[i * stride + j];
      return v;
    };
    writeCellsArrow(join(tmp, "cells.arrow"), {
      barcodes: obs.index,
      columns: [
        { name: "n_genes_by_counts", values: num("n_genes_by_counts") as Int32Array },
        { name: "total_counts", values: num("total_counts") as Float32Array },
        { name: "pct_counts_mt", values: num("pct_counts_mt") as Float32Array },
        { name: "cluster", values: Array.from(out.clusters, (c) => out.clusterNames[c]), categorical: true },
        { name: "UMAP_1", values: column(out.umap, 2, 0) },
        { name: "UMAP_2", values: column(out.umap, 2, 1) },
        ...Array.from({ length: k }, (_, j) => ({ name: `PC_${j + 1}`, values: column(out.pcaScores, k, j) })),
      ],
    });
    writeFileSync(join(tmp, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
