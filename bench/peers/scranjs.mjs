// One timed scran.js run of the steps cellgpu's pipeline runs, on a 10x MTX directory, in its
// own process (the bench starts one per repeat). Plain JS, not bundled: scran.js finds its wasm
// relative to its own package.
//
//   node bench/peers/scranjs.mjs --dir D --threads 2 --min-genes 200 [--max-genes 2500]
//        [--max-pct-mt 5] [--epochs 500] [--min-dist 0.5]
//
// Prints one JSON line: { threads, nCells, steps: {step: ms}, maxRssMiB, clusters }.
// Step mapping (cellgpu step <- scran.js calls):
//   read <- initializeSparseMatrixFromMatrixMarket + features/barcodes
//   qc <- perCellRnaQcMetrics (MT- subset) + the dataset's fixed cut-offs + filterCells
//   normalize <- normalizeCounts (centred library-size factors, log2)
//   hvg <- modelGeneVariances + chooseHvgs(2000)
//   pca <- runPca (50 PCs, HVG rows, IRLBA, not scaled)
//   neighbors_knn <- buildNeighborSearchIndex (Annoy, scran.js default) + findNearestNeighbors(15)
//   neighbors_graph <- buildSnnGraph (rank, 15)
//   leiden <- clusterGraph(leiden, modularity objective, resolution 1)
//   umap <- runUmap (same epochs and min_dist as the cellgpu run)
//   rank_genes_groups <- scoreMarkers (Cohen's d, AUC) on the Leiden clusters
import * as scran from "scran.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { existsSync } from "node:fs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const dir = opt("dir");
const threads = Number(opt("threads", "2"));
const minGenes = Number(opt("min-genes", "200"));
const maxGenes = opt("max-genes") === undefined ? Infinity : Number(opt("max-genes"));
const maxPctMt = opt("max-pct-mt") === undefined ? Infinity : Number(opt("max-pct-mt"));
const epochs = Number(opt("epochs", "500"));
const minDist = Number(opt("min-dist", "0.5"));

const readLines = (base) => {
  const path = existsSync(join(dir, base + ".gz")) ? join(dir, base + ".gz") : join(dir, base);
  let buf = readFileSync(path);
  if (path.endsWith(".gz")) buf = gunzipSync(buf);
  return buf.toString("utf8").split("\n").filter((l) => l.length > 0);
};

await scran.initialize({ numberOfThreads: threads, localFile: true });
const steps = {};
const time = (name, fn) => {
  const t0 = performance.now();
  const out = fn();
  steps[name] = performance.now() - t0;
  return out;
};

const mtxPath = existsSync(join(dir, "matrix.mtx.gz")) ? join(dir, "matrix.mtx.gz") : join(dir, "matrix.mtx");
const { mat, names } = time("read", () => {
  const features = readLines(existsSync(join(dir, "features.tsv.gz")) || existsSync(join(dir, "features.tsv")) ? "features.tsv" : "genes.tsv");
  readLines("barcodes.tsv");
  return { mat: scran.initializeSparseMatrixFromMatrixMarket(mtxPath), names: features.map((l) => l.split("\t")[1] ?? l.split("\t")[0]) };
});

const filtered = time("qc", () => {
  const mito = names.map((n) => (n.toUpperCase().startsWith("MT-") ? 1 : 0));
  const qc = scran.perCellRnaQcMetrics(mat, [mito], { numberOfThreads: threads });
  const detected = qc.detected();
  const prop = qc.subsetProportion(0);
  const keep = new Uint8Array(detected.length);
  for (let i = 0; i < keep.length; i++) {
    keep[i] = detected[i] >= minGenes && detected[i] < maxGenes && prop[i] * 100 < maxPctMt ? 1 : 0;
  }
  qc.free();
  return scran.filterCells(mat, keep);
});
const norm = time("normalize", () => scran.normalizeCounts(filtered, {}));
const hvgs = time("hvg", () => {
  const vars = scran.modelGeneVariances(norm, { numberOfThreads: threads });
  const h = scran.chooseHvgs(vars, { number: 2000 });
  vars.free();
  return h;
});
const pcs = time("pca", () => scran.runPca(norm, { features: hvgs, numberOfPCs: 50, numberOfThreads: threads }));
const nn = time("neighbors_knn", () => {
  const index = scran.buildNeighborSearchIndex(pcs, { approximate: true });
  const res = scran.findNearestNeighbors(index, 15, { numberOfThreads: threads });
  index.free();
  return res;
});
const graph = time("neighbors_graph", () => scran.buildSnnGraph(nn, { scheme: "rank", numberOfThreads: threads }));
const clusters = time("leiden", () => {
  const c = scran.clusterGraph(graph, { method: "leiden", leidenResolution: 1, leidenModularityObjective: true });
  const m = c.membership();
  c.free();
  return m;
});
time("umap", () => scran.runUmap(nn, { neighbors: 15, epochs, minDist, numberOfThreads: threads }));
time("rank_genes_groups", () => scran.scoreMarkers(norm, clusters, { numberOfThreads: threads }).free());

const nCells = filtered.numberOfColumns();
const maxRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(
  JSON.stringify({ peer: "scran.js", version: "4.0.9", threads, nCells, steps, maxRssMiB, clusters: Array.from(clusters) }) + "\n",
);
scran.terminate();
