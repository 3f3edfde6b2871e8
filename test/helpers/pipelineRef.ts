/** Compares a pipeline run with a scanpy_like reference run of the same dataset. */
import { join } from "node:path";
import { makeUnique } from "../../src/core/cellMatrix.js";
import { readTsvRows } from "../../src/io/tsv.js";
import { datasetDir, readMatrix, readTsv, referenceDir } from "./reference.js";
import type { Csr } from "../../src/core/csr.js";

/** Map from unique feature symbol (as the readers name var) to the 0-based row in features.tsv. */
export function featureIndexByName(dataset: string): Map<string, number> {
  const rows = readTsvRows(join(datasetDir(dataset), "features.tsv.gz"));
  const names = makeUnique(rows.map((r) => r[1] ?? r[0]));
  return new Map(names.map((n, i) => [n, i]));
}

/** Reference connectivities as a symmetric CSR over the reference's cells. */
export function referenceGraph(dataset: string, file = "connectivities.tsv.gz", tool = "scanpy_like"): Csr {
  const t = readTsv(join(referenceDir(dataset, tool), file));
  const I = t.num("i");
  const J = t.num("j");
  const W = t.num("weight");
  let n = 0;
  for (let e = 0; e < I.length; e++) n = Math.max(n, I[e] + 1, J[e] + 1);
  const order = Array.from(I.keys()).sort((a, b) => I[a] - I[b] || J[a] - J[b]);
  const indptr = new Float64Array(n + 1);
  const indices = new Uint32Array(I.length);
  const data = new Float32Array(I.length);
  order.forEach((e, o) => {
    indptr[I[e] + 1]++;
    indices[o] = J[e];
    data[o] = W[e];
  });
  for (let r = 0; r < n; r++) indptr[r + 1] += indptr[r];
  return { nRows: n, nCols: n, indptr, indices, data };
}

export function referencePcs(dataset: string) {
  return readMatrix(join(referenceDir(dataset), "pca.tsv.gz"), "PC_");
}
