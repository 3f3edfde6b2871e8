// Times each GPU twin against its CPU twin on pbmc3k (2700 × 32738) and its 2,000 highest-variance
// features (Gram). Not a test; run: npx esbuild test/gpu/bench.ts --bundle --platform=node
// --format=esm --loader:.wgsl=text --external:webgpu --outfile=dist/gpu-bench.mjs && node dist/gpu-bench.mjs
import { subsetCols } from "../../src/core/csr.js";
import { acquireGpu } from "../../src/gpu/device.js";
import { readTenxMtxDir } from "../../src/io/mtx.js";
import { scaledGramCpu, scaledGramGpu } from "../../src/ops/gram.js";
import { featureMomentsCpu, featureMomentsGpu, normalizeTotalLog1pCpu, normalizeTotalLog1pGpu } from "../../src/ops/normalize.js";
import { cellQcCpu, cellQcGpu, mitoMask } from "../../src/ops/qc.js";
import { scaleParamsCpu } from "../../src/ops/scale.js";

const m = await readTenxMtxDir("datasets/pbmc3k");
const X = m.X;
console.log(`pbmc3k ${X.nRows} x ${X.nCols}, nnz ${X.indptr[X.nRows]}`);
const gpu = await acquireGpu();
console.log(gpu.info.description);

async function time<T>(f: () => T | Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await f();
  return [performance.now() - t, r];
}
async function row(name: string, cpu: () => unknown, gpuFn: () => Promise<unknown>) {
  const [c] = await time(cpu);
  const [g1] = await time(gpuFn);
  const [g2] = await time(gpuFn);
  console.log(`${name.padEnd(28)} cpu ${c.toFixed(0).padStart(6)} ms   gpu first ${g1.toFixed(0).padStart(6)} ms   gpu warm ${g2.toFixed(0).padStart(6)} ms`);
}
const mito = mitoMask(m.var.index);
await row("cellQc", () => cellQcCpu(X, mito), () => cellQcGpu(gpu, X, mito));
await row("normalizeTotalLog1p", () => normalizeTotalLog1pCpu(X, 1e4), () => normalizeTotalLog1pGpu(gpu, X, 1e4));
const L = normalizeTotalLog1pCpu(X, 1e4);
await row("featureMoments", () => featureMomentsCpu(L), () => featureMomentsGpu(gpu, L));
const { variance } = featureMomentsCpu(L);
const top = Array.from(variance.keys()).sort((a, b) => variance[b] - variance[a]).slice(0, 2000);
const keep = new Uint8Array(X.nCols);
for (const j of top) keep[j] = 1;
const H = subsetCols(L, keep);
const { mean, std } = scaleParamsCpu(H);
console.log(`Gram input ${H.nRows} x ${H.nCols}, nnz ${H.indptr[H.nRows]}`);
await row("scaledGram (2000 features)", () => scaledGramCpu(H, mean, std, 10), () => scaledGramGpu(gpu, H, mean, std, 10));
gpu.destroy();
