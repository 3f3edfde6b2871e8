/**
 * Stand-alone simulator entry:
 *   npx tsx src/sim/cli.ts --cells 1000000 --genes 20000 --seed 1 --out dir [--clusters 8]
 * Prints cells, genes, nnz and seconds.
 */
import { Command } from "commander";
import { simulateTenx } from "./simulate.js";

const o = new Command()
  .requiredOption("--cells <n>", "number of cells")
  .requiredOption("--out <dir>", "output 10x directory")
  .option("--genes <n>", "number of genes (default: the fitted pbmc3k genes)")
  .option("--seed <n>", "seed", "1")
  .option("--clusters <n>", "number of clusters", "8")
  .parse()
  .opts<{ cells: string; out: string; genes?: string; seed: string; clusters: string }>();

const t0 = performance.now();
const s = await simulateTenx({
  nCells: Number(o.cells),
  outDir: o.out,
  seed: Number(o.seed),
  nClusters: Number(o.clusters),
  nGenes: o.genes === undefined ? undefined : Number(o.genes),
});
const sec = (performance.now() - t0) / 1000;
console.log(`cells ${s.nCells}\tgenes ${s.nGenes}\tnnz ${s.nnz}\tseconds ${sec.toFixed(2)}`);
