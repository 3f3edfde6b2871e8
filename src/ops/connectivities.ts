/**
 * Graphs built from a kNN list (see knn.ts: self first, then neighbours by distance).
 *
 * - fuzzySimplicialSetCpu: scanpy's `obsp['connectivities']` — what `sc.pp.neighbors` gets from
 *   umap-learn's `fuzzy_simplicial_set(X, n_neighbors, None, None, knn_indices, knn_dists,
 *   set_op_mix_ratio=1, local_connectivity=1)`: `smooth_knn_dist` (rho = first non-zero distance
 *   of the row, self column included; sigma by a 64-step binary search so that
 *   Σ_{j≥1} exp(−max(0, d_j − rho)/sigma) = log2(k), floored at 1e-3 × mean distance), then
 *   `compute_membership_strengths` (w = exp(−(d − rho)/sigma), 1 where d ≤ rho, 0 for self), then
 *   the fuzzy union A + Aᵀ − A∘Aᵀ. umap does the search and the weights in float32 (numba locals,
 *   float32 arrays) and scipy does the union in float32; we round at the same places
 *   (Math.fround) so the weights agree to float32 rounding, not just to the tolerance.
 * - knnDistancesCsr: scanpy's `obsp['distances']` — each row holds its k−1 neighbours (self
 *   dropped), duplicates' zero distances kept as explicit entries (scanpy >= 1.10).
 * - snnGraphCpu: Seurat's `ComputeSNN` (FindNeighbors → `graphs$RNA_snn`): with A the 0/1 kNN
 *   incidence (self included), S = A·Aᵀ, weight = S_ij / (2k − S_ij), entries below `prune`
 *   removed. Symmetric, and the diagonal (weight 1) is kept, as in Seurat.
 *
 * All outputs are CSR with sorted columns and float32 weights.
 *
 * GPU twins, below the CPU code: smoothKnnDistGpu / fuzzySimplicialSetGpu (kernels/connectivities.wgsl,
 * kernels/fuzzy_union.wgsl) and snnGraphGpu (kernels/snn.wgsl); each says which part runs on the device and which on the host.
 */
import { type Csr, transpose } from "../core/csr.js";
import { GpuError, type Gpu, type Step } from "../gpu/device.js";
import { exclusiveScanU32Steps } from "../gpu/scan.js";
import type { Knn } from "./knn.js";

const SMOOTH_K_TOLERANCE = 1e-5;
const MIN_K_DIST_SCALE = 1e-3;
const N_ITER = 64;

const f32 = Math.fround;

/**
 * umap's smooth_knn_dist with local_connectivity 1 and bandwidth 1. psum, lo, mid and hi are
 * float32 in umap (numba `locals`), as are the distances; the comparisons with the float64
 * target promote, as numba does.
 */
export function smoothKnnDistCpu(knn: Knn): { sigmas: Float32Array; rhos: Float32Array } {
  const { n, k, distances } = knn;
  const target = Math.log2(k);
  const sigmas = new Float32Array(n);
  const rhos = new Float32Array(n);
  let total = 0;
  for (let t = 0; t < n * k; t++) total += distances[t];
  const meanDistances = total / (n * k);

  for (let i = 0; i < n; i++) {
    const o = i * k;
    let rho = 0;
    for (let j = 0; j < k; j++) {
      if (distances[o + j] > 0) {
        rho = distances[o + j];
        break;
      }
    }
    rhos[i] = rho;

    let lo = 0;
    let hi = Infinity;
    let mid = 1;
    for (let it = 0; it < N_ITER; it++) {
      let psum = 0;
      for (let j = 1; j < k; j++) {
        const dd = f32(distances[o + j] - rho);
        psum = f32(psum + (dd > 0 ? f32(Math.exp(-f32(dd / mid))) : 1));
      }
      if (Math.abs(psum - target) < SMOOTH_K_TOLERANCE) break;
      if (psum > target) {
        hi = mid;
        mid = f32(f32(lo + hi) / 2);
      } else {
        lo = mid;
        mid = hi === Infinity ? f32(mid * 2) : f32(f32(lo + hi) / 2);
      }
    }
    let sigma = mid;
    if (rho > 0) {
      let rowSum = 0;
      for (let j = 0; j < k; j++) rowSum += distances[o + j];
      const floor = MIN_K_DIST_SCALE * (rowSum / k);
      if (sigma < floor) sigma = floor;
    } else if (sigma < MIN_K_DIST_SCALE * meanDistances) {
      sigma = MIN_K_DIST_SCALE * meanDistances;
    }
    sigmas[i] = sigma;
  }
  return { sigmas, rhos };
}

/** scanpy's connectivities: umap's fuzzy simplicial set of the kNN graph, fuzzy union. */
export function fuzzySimplicialSetCpu(knn: Knn): Csr {
  const { n, k, indices, distances } = knn;
  const { sigmas, rhos } = smoothKnnDistCpu(knn);
  // Directed membership strengths (compute_membership_strengths), one per kNN slot.
  const weights = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const c = indices[i * k + j];
      if (c < 0) continue; // umap's marker for a missing neighbour
      const dd = f32(distances[i * k + j] - rhos[i]);
      if (c === i) weights[i * k + j] = 0;
      else if (dd <= 0 || sigmas[i] === 0) weights[i * k + j] = 1;
      else weights[i * k + j] = f32(Math.exp(-f32(dd / sigmas[i])));
    }
  }
  return fuzzyUnion(knn, weights);
}

/**
 * A + Aᵀ − A∘Aᵀ for the directed weights A of the kNN slots (missing neighbours, c < 0, skipped).
 * Flat typed arrays throughout (per-row JS arrays cost ~1 GB and most of the time at 1M cells).
 */
function fuzzyUnion(knn: Knn, weights: Float32Array): Csr {
  const { n, k, indices } = knn;
  // A as CSR, zeros eliminated.
  const aPtr = new Float64Array(n + 1);
  const aIdx = new Uint32Array(n * k);
  const aVal = new Float32Array(n * k);
  const rowC = new Int32Array(k);
  const rowV = new Float32Array(k);
  let nnzA = 0;
  for (let i = 0; i < n; i++) {
    // Columns sorted by a stable insertion sort (k is small); coo → csr sums duplicate coordinates.
    let m = 0;
    for (let j = 0; j < k; j++) {
      const c = indices[i * k + j];
      if (c < 0) continue;
      let s = m++;
      while (s > 0 && rowC[s - 1] > c) {
        rowC[s] = rowC[s - 1];
        rowV[s] = rowV[s - 1];
        s--;
      }
      rowC[s] = c;
      rowV[s] = weights[i * k + j];
    }
    let u = 0;
    for (let t = 0; t < m; t++) {
      if (u > 0 && rowC[u - 1] === rowC[t]) rowV[u - 1] = f32(rowV[u - 1] + rowV[t]);
      else {
        rowC[u] = rowC[t];
        rowV[u++] = rowV[t];
      }
    }
    for (let t = 0; t < u; t++) {
      if (rowV[t] !== 0) {
        aIdx[nnzA] = rowC[t];
        aVal[nnzA++] = rowV[t];
      }
    }
    aPtr[i + 1] = nnzA;
  }
  const A: Csr = { nRows: n, nCols: n, indptr: aPtr, indices: aIdx.subarray(0, nnzA), data: aVal.subarray(0, nnzA) };
  const At = transpose(A);

  // Fuzzy union, per entry in scipy's float32 order: (a + b) − (a·b).
  const indptr = new Float64Array(n + 1);
  const outC = new Uint32Array(2 * nnzA);
  const outV = new Float32Array(2 * nnzA);
  let nnz = 0;
  for (let i = 0; i < n; i++) {
    let p = A.indptr[i];
    const pe = A.indptr[i + 1];
    let q = At.indptr[i];
    const qe = At.indptr[i + 1];
    while (p < pe || q < qe) {
      const ca = p < pe ? aIdx[p] : n;
      const cb = q < qe ? At.indices[q] : n;
      const c = ca < cb ? ca : cb;
      const a = ca === c ? aVal[p++] : 0;
      const b = cb === c ? At.data[q++] : 0;
      const v = f32(f32(a + b) - f32(a * b));
      if (v !== 0) {
        outC[nnz] = c;
        outV[nnz++] = v;
      }
    }
    indptr[i + 1] = nnz;
  }
  return { nRows: n, nCols: n, indptr, indices: outC.slice(0, nnz), data: outV.slice(0, nnz) };
}

/** scanpy's distances matrix: row i holds neighbours 1..k−1 of i with their distances. */
export function knnDistancesCsr(knn: Knn): Csr {
  const { n, k, indices, distances } = knn;
  const w = Math.max(0, k - 1);
  const indptr = new Float64Array(n + 1);
  const cols = new Uint32Array(n * w);
  const vals = new Float32Array(n * w);
  const order = new Int32Array(w);
  for (let i = 0; i < n; i++) {
    if (indices[i * k] !== i) {
      throw new Error(`knnDistancesCsr: the first neighbour of row ${i} is ${indices[i * k]}, not the cell itself`);
    }
    // Slots 1..k−1 by column, stable insertion sort (equal columns keep slot order).
    for (let j = 1; j < k; j++) {
      const c = indices[i * k + j];
      let s = j - 1;
      while (s > 0 && indices[i * k + order[s - 1]] > c) {
        order[s] = order[s - 1];
        s--;
      }
      order[s] = j;
    }
    const o = i * w;
    for (let t = 0; t < w; t++) {
      cols[o + t] = indices[i * k + order[t]];
      vals[o + t] = distances[i * k + order[t]];
    }
    indptr[i + 1] = o + w;
  }
  return { nRows: n, nCols: n, indptr, indices: cols, data: vals };
}

/** Seurat's shared-nearest-neighbour graph: Jaccard-like overlap of kNN sets, pruned. */
export function snnGraphCpu(knn: Knn, prune: number): Csr {
  const { n, k, indices } = knn;
  // Reverse lists: rev[m] = the rows whose kNN set contains m (columns of Aᵀ).
  const revPtr = new Int32Array(n + 1);
  for (let t = 0; t < n * k; t++) revPtr[indices[t] + 1]++;
  for (let m = 0; m < n; m++) revPtr[m + 1] += revPtr[m];
  const fill = revPtr.slice(0, n);
  const rev = new Int32Array(n * k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) rev[fill[indices[i * k + j]]++] = i;

  const count = new Int32Array(n);
  const touched = new Int32Array(n);
  const indptr = new Float64Array(n + 1);
  let cap = n * k * 4;
  let cols = new Uint32Array(cap);
  let vals = new Float32Array(cap);
  let nnz = 0;
  for (let i = 0; i < n; i++) {
    let nTouched = 0;
    for (let j = 0; j < k; j++) {
      const m = indices[i * k + j];
      for (let r = revPtr[m]; r < revPtr[m + 1]; r++) {
        const other = rev[r];
        if (count[other]++ === 0) touched[nTouched++] = other;
      }
    }
    const row = touched.subarray(0, nTouched).sort();
    if (nnz + nTouched > cap) {
      cap = Math.max(2 * cap, nnz + nTouched);
      const c2 = new Uint32Array(cap);
      c2.set(cols.subarray(0, nnz));
      cols = c2;
      const v2 = new Float32Array(cap);
      v2.set(vals.subarray(0, nnz));
      vals = v2;
    }
    for (let t = 0; t < nTouched; t++) {
      const c = row[t];
      const s = count[c];
      count[c] = 0;
      const w = s / (k + (k - s)); // Seurat's expression, in double
      if (w >= prune) {
        cols[nnz] = c;
        vals[nnz++] = w;
      }
    }
    indptr[i + 1] = nnz;
  }
  return { nRows: n, nCols: n, indptr, indices: cols.slice(0, nnz), data: vals.slice(0, nnz) };
}

/**
 * GPU twin of fuzzySimplicialSetCpu, all on the device but two small integer read-backs:
 * kernels/connectivities.wgsl computes rho, sigma (64-step binary search) and the k directed
 * membership strengths per cell in f32 (the CPU twin rounds to f32 at the same places, so only
 * exp's last bits differ); kernels/fuzzy_union.wgsl then builds A (each kNN row's columns
 * sorted, duplicate columns summed in slot order, zeros dropped), Aᵀ (in-degrees counted with
 * integer atomics, scanned, scattered, each column re-placed by rank) and per row the merge
 * A + Aᵀ − A∘Aᵀ with the CPU's f32 operations in the CPU's order — so given the same directed
 * weights the union is bit-identical to the CPU's, and it is the same bits run to run. The host
 * reads back the two scans (Aᵀ's and the result's row pointers, (n+1) u32 each) to plan
 * chunks: forward rows, reverse columns and output rows are split so that no binding exceeds
 * maxStorageBufferBindingSize. Only the global mean distance (float64, for the sigma floor of rows
 * with rho = 0) is computed on the host. Needs (n+1) u32 in one binding and indices < n.
 */
export async function fuzzySimplicialSetGpu(gpu: Gpu, knn: Knn): Promise<Csr> {
  const { n, k, indices } = knn;
  if (n === 0 || k === 0) return { nRows: n, nCols: n, indptr: new Float64Array(n + 1), indices: new Uint32Array(0), data: new Float32Array(0) };
  for (let t = 0; t < n * k; t++) {
    if (indices[t] >= n) throw new RangeError(`fuzzySimplicialSetGpu: row ${Math.floor(t / k)} has neighbour index ${indices[t]} ≥ n = ${n}`);
  }
  const maxWords = Math.floor(Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 4);
  if (n + 1 > maxWords) throw new GpuError(`fuzzySimplicialSetGpu: ${n + 1} row pointers exceed one binding`);
  if (2 * n * k >= 2 ** 32) throw new GpuError(`fuzzySimplicialSetGpu: ${n} × ${k} neighbours overflow u32 offsets`);
  const smooth = await smoothPlan(gpu, knn, "fuzzySimplicialSetGpu");
  const code = (await import("../../kernels/fuzzy_union.wgsl")).default;
  const entries = ["fwd_dedup", "fwd_rank", "rev_scatter", "rev_rank", "union_count", "union_write"] as const;
  const [dedup, rank, scatter, revRank, count, write] = await Promise.all(entries.map((e) => gpu.pipeline(code, e)));
  const rw = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const temps: GPUBuffer[] = []; // live until the end
  let transient: GPUBuffer[] = []; // destroyed once the submission that needs them has run
  const buf = (words: number, label: string, list = temps): GPUBuffer => {
    const b = gpu.createBuffer(4 * words, rw, `fuzzy.${label}`);
    list.push(b);
    return b;
  };
  const params = (p: { count: number; rowStart?: number; fwdRow0?: number; revRow0?: number; revRow1?: number; revBase?: number; outBase?: number }) => {
    const u = gpu.uniforms({ u32: [p.count, p.rowStart ?? 0, k, n, p.fwdRow0 ?? 0, p.revRow0 ?? 0, p.revRow1 ?? 0, p.revBase ?? 0, p.outBase ?? 0, 0, 0, 0] }, "fuzzy.params");
    transient.push(u);
    return u;
  };
  const wg = (count: number, size: number) => Math.ceil(count / size);
  const destroyTransient = () => {
    for (const b of transient) b.destroy();
    transient = [];
  };
  try {
    // 1. Directed weights, then A's rows sorted and deduplicated; in-degrees scanned into revPtr.
    const R = smooth.rowsPerChunk;
    const fwd: { start: number; rows: number; key: GPUBuffer; val: GPUBuffer }[] = [];
    const indeg = buf(n, "indeg", transient);
    const steps: Step[] = [{ clear: indeg }];
    for (let start = 0; start < n; start += R) {
      const rows = Math.min(R, n - start);
      const sm = smoothChunk(gpu, smooth, knn, start, rows);
      transient.push(...sm.bufs);
      const slots = rows * k;
      const tk = buf(slots, "tmpKey", transient);
      const tv = buf(slots, "tmpVal", transient);
      const key = buf(slots, "fwdKey");
      const val = buf(slots, "fwdVal");
      const p = params({ count: slots, fwdRow0: start });
      steps.push(
        sm.step,
        { clear: key },
        { pipeline: dedup, bindings: [p, sm.idx, sm.weights, tk, tv], workgroups: wg(slots, 256) },
        { pipeline: rank, bindings: [p, undefined, undefined, tk, tv, key, val, indeg], workgroups: wg(slots, 256) },
      );
      fwd.push({ start, rows, key, val });
    }
    const revScan = await exclusiveScanU32Steps(gpu, indeg, n, "fuzzy.revPtr");
    temps.push(revScan.out);
    transient.push(...revScan.temps);
    await gpu.run("fuzzy.forward", [...steps, ...revScan.steps]);
    destroyTransient();
    const revPtrBuf = revScan.out;
    const revPtr = new Uint32Array(await gpu.readback(revPtrBuf, 4 * (n + 1)));

    // 2. Aᵀ by column chunks: scattered in claim order, each column re-placed by rank; then the
    //    union's entry counts per row, over ranges lying in one forward and one reverse chunk.
    const rev = splitRows(n, maxWords, (s, e) => revPtr[e] - revPtr[s], "in-degree");
    const fill = buf(n, "fill", transient);
    const revBufs = rev.map(([s, e]) => {
      const m = revPtr[e] - revPtr[s];
      return { s, e, base: revPtr[s], m, tk: buf(m, "revTmpKey", transient), tv: buf(m, "revTmpVal", transient), key: buf(m, "revKey"), val: buf(m, "revVal") };
    });
    const outCnt = buf(n, "outCnt");
    const steps2: Step[] = [{ clear: fill }];
    for (const f of fwd) {
      for (const r of revBufs) {
        const p = params({ count: f.rows * k, fwdRow0: f.start, revRow0: r.s, revRow1: r.e, revBase: r.base });
        steps2.push({
          pipeline: scatter,
          bindings: [p, undefined, undefined, undefined, undefined, f.key, f.val, undefined, revPtrBuf, fill, r.tk, r.tv],
          workgroups: wg(f.rows * k, 256),
        });
      }
    }
    for (const r of revBufs) {
      const p = params({ count: r.m, revRow0: r.s, revRow1: r.e, revBase: r.base });
      const b: (GPUBuffer | undefined)[] = [p, ...new Array<undefined>(7), revPtrBuf, undefined, r.tk, r.tv, r.key, r.val];
      steps2.push({ pipeline: revRank, bindings: b, workgroups: wg(r.m, 256) });
    }
    // Ranges: the forward and reverse chunk boundaries together.
    const cuts = [...new Set([...fwd.map((f) => f.start), ...revBufs.map((r) => r.s), n])].sort((a, b) => a - b);
    const ranges: { s: number; e: number; f: (typeof fwd)[number]; r: (typeof revBufs)[number] }[] = [];
    for (let c = 0; c + 1 < cuts.length; c++) {
      const s = cuts[c];
      ranges.push({ s, e: cuts[c + 1], f: fwd[Math.floor(s / R)], r: revBufs.find((r) => r.s <= s && s < r.e)! });
    }
    const unionBindings = (p: GPUBuffer, g: (typeof ranges)[number]): (GPUBuffer | undefined)[] => [
      p, undefined, undefined, undefined, undefined, g.f.key, g.f.val, undefined, revPtrBuf, undefined, undefined, undefined, g.r.key, g.r.val,
    ];
    const uparams = (g: (typeof ranges)[number], rowStart: number, rows: number, outBase = 0) =>
      params({ count: rows, rowStart, fwdRow0: g.f.start, revRow0: g.r.s, revRow1: g.r.e, revBase: g.r.base, outBase });
    for (const g of ranges) {
      steps2.push({ pipeline: count, bindings: [...unionBindings(uparams(g, g.s, g.e - g.s), g), outCnt], workgroups: wg(g.e - g.s, 64) });
    }
    const outScan = await exclusiveScanU32Steps(gpu, outCnt, n, "fuzzy.outPtr");
    temps.push(outScan.out);
    transient.push(...outScan.temps);
    await gpu.run("fuzzy.reverse", [...steps2, ...outScan.steps]);
    destroyTransient();
    const outPtrBuf = outScan.out;
    const outPtr = new Uint32Array(await gpu.readback(outPtrBuf, 4 * (n + 1)));

    // 3. The union's entries, in row ranges whose entries fit one binding.
    const nnz = outPtr[n];
    const outC = new Uint32Array(nnz);
    const outV = new Float32Array(nnz);
    const writes: { base: number; m: number; col: GPUBuffer; val: GPUBuffer }[] = [];
    const steps3: Step[] = [];
    for (const g of ranges) {
      for (const [s, e] of splitRows(g.e - g.s, maxWords, (a, b) => outPtr[g.s + b] - outPtr[g.s + a], "union", g.s)) {
        const base = outPtr[g.s + s];
        const m = outPtr[g.s + e] - base;
        const col = buf(m, "outCol", transient);
        const val = buf(m, "outVal", transient);
        const p = uparams(g, g.s + s, e - s, base);
        steps3.push({
          pipeline: write,
          bindings: [...unionBindings(p, g), undefined, outPtrBuf, col, val],
          workgroups: wg(e - s, 64),
        });
        writes.push({ base, m, col, val });
      }
    }
    await gpu.run("fuzzy.union", steps3);
    const back = await gpu.readbackAll(writes.flatMap((w) => [
      { buffer: w.col, byteLength: 4 * w.m },
      { buffer: w.val, byteLength: 4 * w.m },
    ]));
    writes.forEach((w, t) => {
      outC.set(new Uint32Array(back[2 * t]), w.base);
      outV.set(new Float32Array(back[2 * t + 1]), w.base);
    });
    return { nRows: n, nCols: n, indptr: Float64Array.from(outPtr), indices: outC, data: outV };
  } finally {
    for (const b of [...temps, ...transient]) b.destroy();
  }
}

/**
 * Consecutive row ranges [s, e) of rows 0..n−1, greedy, each with size(s, e) ≤ maxWords and
 * e − s < maxWords; throws when a single row is too large (`what` names its measure).
 */
function splitRows(n: number, maxWords: number, size: (s: number, e: number) => number, what: string, offset = 0): [number, number][] {
  const out: [number, number][] = [];
  let s = 0;
  while (s < n) {
    if (size(s, s + 1) > maxWords) throw new GpuError(`fuzzySimplicialSetGpu: row ${offset + s}'s ${what} exceeds one binding`);
    let e = s + 1;
    while (e < n && e - s < maxWords - 1 && size(s, e + 1) <= maxWords) e++;
    out.push([s, e]);
    s = e;
  }
  return out;
}

interface SmoothPlan {
  pipeline: GPUComputePipeline;
  meanFloor: number;
  rowsPerChunk: number;
}

/** smooth_knn's pipeline, the global sigma floor and the rows of one chunk (n·k per binding). */
async function smoothPlan(gpu: Gpu, knn: Knn, who: string): Promise<SmoothPlan> {
  const { n, k, distances } = knn;
  const code = (await import("../../kernels/connectivities.wgsl")).default;
  const pipeline = await gpu.pipeline(code, "smooth_knn");
  let total = 0;
  for (let t = 0; t < n * k; t++) total += distances[t];
  const meanFloor = MIN_K_DIST_SCALE * (total / (n * k));
  const rowsPerChunk = Math.floor(Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / (4 * k));
  if (rowsPerChunk < 1) throw new Error(`${who}: a row of k=${k} does not fit one binding`);
  return { pipeline, meanFloor, rowsPerChunk };
}

/** smooth_knn over rows [start, start+rows): its buffers (all to destroy) and its dispatch. */
function smoothChunk(gpu: Gpu, plan: SmoothPlan, knn: Knn, start: number, rows: number) {
  const { k, indices, distances } = knn;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const bufs = [
    gpu.uniforms({ u32: [rows, start, k, 0], f32: [Math.log2(k), plan.meanFloor, 0, 0] }),
    gpu.upload(distances.subarray(start * k, (start + rows) * k), "conn.dist"),
    gpu.upload(indices.subarray(start * k, (start + rows) * k), "conn.idx"),
    gpu.createBuffer(rows * 4, usage, "conn.sigmas"),
    gpu.createBuffer(rows * 4, usage, "conn.rhos"),
    gpu.createBuffer(rows * k * 4, usage, "conn.weights"),
  ];
  const step: Step = { pipeline: plan.pipeline, bindings: bufs, workgroups: Math.ceil(rows / 64) };
  return { bufs, step, idx: bufs[2], sigmas: bufs[3], rhos: bufs[4], weights: bufs[5] };
}

/** GPU twin of smoothKnnDistCpu, plus the directed membership strengths (n × k) of each kNN slot. */
export async function smoothKnnDistGpu(gpu: Gpu, knn: Knn): Promise<{ sigmas: Float32Array; rhos: Float32Array; weights: Float32Array }> {
  const { n, k } = knn;
  const out = { sigmas: new Float32Array(n), rhos: new Float32Array(n), weights: new Float32Array(n * k) };
  if (n === 0) return out;
  const plan = await smoothPlan(gpu, knn, "smoothKnnDistGpu");
  for (let start = 0; start < n; start += plan.rowsPerChunk) {
    const rows = Math.min(plan.rowsPerChunk, n - start);
    const c = smoothChunk(gpu, plan, knn, start, rows);
    try {
      await gpu.run("smooth_knn", [c.step]);
      const [sg, rh, w] = await gpu.readbackAll([
        { buffer: c.sigmas, byteLength: rows * 4 },
        { buffer: c.rhos, byteLength: rows * 4 },
        { buffer: c.weights, byteLength: rows * k * 4 },
      ]);
      out.sigmas.set(new Float32Array(sg), start);
      out.rhos.set(new Float32Array(rh), start);
      out.weights.set(new Float32Array(w), start * k);
    } finally {
      for (const b of c.bufs) b.destroy();
    }
  }
  return out;
}

/**
 * GPU twin of snnGraphCpu (kernels/snn.wgsl). On the device: for every row, the rows sharing a kNN
 * member and the shared counts S (integer merges of sorted kNN sets, each pair once), in a count
 * pass and a write pass over row chunks sized to the binding limit. On the host: sorted kNN sets
 * and reverse lists (O(n·k)), then per row the columns sorted and Seurat's weight S/(2k − S) in
 * double with the same prune test as the CPU twin — so the result is identical to snnGraphCpu.
 * Needs distinct, non-negative neighbour indices per row, and n·k indices in one binding.
 */
export async function snnGraphGpu(gpu: Gpu, knn: Knn, prune: number): Promise<Csr> {
  const { n, k, indices } = knn;
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (n * k * 4 > limit) throw new Error(`snnGraphGpu: ${n} × ${k} neighbour indices exceed one ${limit}-byte binding`);
  const nbr = new Uint32Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = nbr.subarray(i * k, (i + 1) * k);
    for (let j = 0; j < k; j++) {
      const c = indices[i * k + j];
      if (c < 0 || c >= n) throw new RangeError(`snnGraphGpu: row ${i} has neighbour index ${c}`);
      row[j] = c;
    }
    row.sort();
    for (let j = 1; j < k; j++) if (row[j] === row[j - 1]) throw new RangeError(`snnGraphGpu: row ${i} lists ${row[j]} twice`);
  }
  const revPtr = new Uint32Array(n + 1);
  for (let t = 0; t < n * k; t++) revPtr[nbr[t] + 1]++;
  for (let m = 0; m < n; m++) revPtr[m + 1] += revPtr[m];
  const fill = revPtr.slice(0, n);
  const rev = new Uint32Array(n * k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) rev[fill[nbr[i * k + j]]++] = i;

  const code = (await import("../../kernels/snn.wgsl")).default;
  const [countPipe, writePipe] = await Promise.all([gpu.pipeline(code, "snn_count"), gpu.pipeline(code, "snn_write")]);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  const temp = [gpu.upload(nbr, "snn.nbr"), gpu.upload(revPtr, "snn.revPtr"), gpu.upload(rev, "snn.rev")];
  const [nbrBuf, revPtrBuf, revBuf] = temp;
  const maxWords = Math.floor(limit / 4);
  const counts = new Uint32Array(n);
  const indptr = new Float64Array(n + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  try {
    for (let start = 0; start < n; start += maxWords) {
      const rows = Math.min(maxWords, n - start);
      const params = gpu.uniforms({ u32: [rows, start, k, 0] });
      const out = gpu.createBuffer(rows * 4, usage, "snn.counts");
      temp.push(params, out);
      await gpu.run("snn_count", [
        { pipeline: countPipe, bindings: [params, nbrBuf, revPtrBuf, revBuf, undefined, out], workgroups: Math.ceil(rows / 64) },
      ]);
      counts.set(new Uint32Array(await gpu.readback(out, rows * 4)), start);
    }
    let start = 0;
    while (start < n) {
      // Rows whose entries (and row offsets) fit one binding.
      let end = start;
      let total = 0;
      while (end < n && end - start < maxWords - 1 && total + counts[end] <= maxWords) total += counts[end++];
      if (end === start) throw new Error(`snnGraphGpu: row ${start} has ${counts[start]} entries, more than one binding holds`);
      const rowOff = new Uint32Array(end - start + 1);
      for (let r = start; r < end; r++) rowOff[r - start + 1] = rowOff[r - start] + counts[r];
      const params = gpu.uniforms({ u32: [end - start, start, k, 0] });
      const offBuf = gpu.upload(rowOff, "snn.rowOff");
      const colBuf = gpu.createBuffer(total * 4, usage, "snn.col");
      const sBuf = gpu.createBuffer(total * 4, usage, "snn.s");
      temp.push(params, offBuf, colBuf, sBuf);
      await gpu.run("snn_write", [
        {
          pipeline: writePipe,
          bindings: [params, nbrBuf, revPtrBuf, revBuf, offBuf, undefined, colBuf, sBuf],
          workgroups: Math.ceil((end - start) / 64),
        },
      ]);
      const [cb, sb] = await gpu.readbackAll([
        { buffer: colBuf, byteLength: total * 4 },
        { buffer: sBuf, byteLength: total * 4 },
      ]);
      const col = new Uint32Array(cb);
      const sv = new Uint32Array(sb);
      for (let r = start; r < end; r++) {
        const a = rowOff[r - start];
        const order = Array.from({ length: counts[r] }, (_, t) => a + t).sort((x, y) => col[x] - col[y]);
        for (const e of order) {
          const s = sv[e];
          const w = s / (k + (k - s)); // Seurat's expression, in double, as snnGraphCpu
          if (w >= prune) {
            cols.push(col[e]);
            vals.push(w);
          }
        }
        indptr[r + 1] = cols.length;
      }
      start = end;
    }
  } finally {
    for (const b of temp) b.destroy();
  }
  return { nRows: n, nCols: n, indptr, indices: Uint32Array.from(cols), data: Float32Array.from(vals) };
}
