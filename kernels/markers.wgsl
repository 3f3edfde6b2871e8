// markers.wgsl — rank_genes_groups statistics over a chunk of genes (src/ops/markers.ts, GPU twin).
// Input layout (built on the host): the chunk's nonzeros of labelled cells, gene-major and, within a
// gene, group-major ("orig"), each as the order-preserving u32 image of its float32 value
// (key = bits + 2^31 for v ≥ 0, 2^32 − 1 − bits for v < 0). segStart[j]..segStart[j+1] is gene j's
// segment, groupStart[j·G + g].. its group-g part.
//
// run_sort / merge_pass — Bindings: 0 uniform {n, width}; 1 src: array<u32>; 2 dst: array<u32>
//   out; 3 geneOf: array<u32> (chunk-local gene of each position); 4 segStart: array<u32>.
//   run_sort: workgroup 64, one invocation = one element; sorts runs of K = 16 keys (from each
//   segment start): an element's place = the run's keys below it, equal keys before it counted.
//   Workgroup 64, one invocation = K = 16 consecutive output positions. One step of a segmented
//   bottom-up merge sort: within each gene segment, runs of `width` keys (from the segment start)
//   are merged pairwise. For its first output the invocation finds the co-rank in the run pair
//   (merge path: binary search for how many of the first d outputs come from the left run, left
//   first on ties), then merges sequentially; at a pair's or segment's end it starts over for the
//   next. Every position is written exactly once; integer-only, so deterministic.
//   After run_sort, passes with width 16, 32, … up to the longest segment sort every segment. A
//   merge pass's n is the prefix of positions in segments longer than width (the host lays genes
//   out by decreasing length), so finished segments are not copied again.
//
// group_stats — Bindings: 0 uniform {nPairs, nGroups, nCells, ranks (0/1), toFixed: f32};
//   1 orig: array<u32>; 2 sorted: array<u32>; 3 segStart; 4 groupStart: array<u32>;
//   5 rankSum, 6 sum, 7 sumSq: array<vec2u> out (per gene × group); 8 rankAt: array<u32> (tie_sums'
//   doubled ranks). Workgroup 64, one invocation = one (gene, group) pair, walking its nonzeros in
//   layout order (fixed order, no atomics). A nonzero's doubled rank is rankAt at the start of its
//   tie block in the sorted segment (a binary search), summed exactly as u64 (hi, lo). sum and sumSq are 64-bit
//   two's-complement fixed point (hi, lo) with F fractional bits (toFixed = 2^(F−32)); v² is added
//   as vh² + 2·vh·vl + vl² with v = vh + vl split at 12 mantissa bits, each product exact in f32,
//   so both sums are exact up to the 2^−F truncation of each term.
//
// tie_sums — Bindings: 0 uniform {nGenes, nCells}; 2 sorted; 3 segStart; 5 tie: array<vec2u> out
//   (u64 Σ(t³ − t) over the gene's nonzero tie blocks), 6 nNeg: array<u32> out (negative
//   nonzeros), 7 rankAt: array<u32> out (per sorted position: doubled average-tie rank among all
//   tested cells = lo + hi + 1 for the tie block [lo, hi) of the segment, + 2·zeros for v > 0: the
//   zero block sits between negatives and positives). Workgroup 64, one invocation = one gene,
//   walking its sorted segment in order. Runs before group_stats.
//
// Linear workgroup index = wid.x + wid.y · nwg.x (2-D grids past 65535 workgroups).

const POS: u32 = 0x80000000u;

struct MergeParams { n: u32, width: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> MP: MergeParams;
@group(0) @binding(1) var<storage, read> mSrc: array<u32>;
@group(0) @binding(2) var<storage, read_write> mDst: array<u32>;
@group(0) @binding(3) var<storage, read> geneOf: array<u32>;
@group(0) @binding(4) var<storage, read> mSeg: array<u32>;

// Outputs per merge_pass invocation; also the length of the runs that run_sort sorts.
const K: u32 = 16u;

@compute @workgroup_size(64)
fn run_sort(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (i >= MP.n) { return; }
  let gene = geneOf[i];
  let s = mSeg[gene];
  let e = mSeg[gene + 1u];
  let runStart = s + ((i - s) / K) * K;
  let runEnd = min(runStart + K, e);
  let key = mSrc[i];
  var pos = 0u;
  for (var q = runStart; q < runEnd; q++) {
    let kq = mSrc[q];
    pos += select(0u, 1u, kq < key || (kq == key && q < i));
  }
  mDst[runStart + pos] = key;
}

@compute @workgroup_size(64)
fn merge_pass(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  var p = ((wid.x + wid.y * nwg.x) * 64u + lid) * K;
  let pEnd = min(p + K, MP.n);
  let w = MP.width;
  while (p < pEnd) {
    // The run pair (A, B) holding output position p, within p's gene segment.
    let gene = geneOf[p];
    let s = mSeg[gene];
    let e = mSeg[gene + 1u];
    let pairStart = s + ((p - s) / (2u * w)) * (2u * w);
    let aEnd = min(pairStart + w, e);
    let bEnd = min(aEnd + w, e);
    let lenA = aEnd - pairStart;
    let lenB = bEnd - aEnd;
    let d = p - pairStart;
    // Co-rank: the number of A elements among the pair's first d outputs (A first on ties).
    var lo = select(0u, d - lenB, d > lenB);
    var hi = min(d, lenA);
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (mSrc[pairStart + mid] <= mSrc[aEnd + d - mid - 1u]) { lo = mid + 1u; } else { hi = mid; }
    }
    var i = pairStart + lo;
    var j = aEnd + d - lo;
    var va = mSrc[min(i, MP.n - 1u)];
    var vb = mSrc[min(j, MP.n - 1u)];
    let stop = min(pEnd, bEnd);
    // Branch-free step (lanes diverge on every comparison otherwise): write the smaller head,
    // advance its side, reload that side's head (clamped index; a head past its run is never used).
    for (; p < stop; p++) {
      let takeA = (i < aEnd) & ((j >= bEnd) | (va <= vb));
      mDst[p] = select(vb, va, takeA);
      i += select(0u, 1u, takeA);
      j += select(1u, 0u, takeA);
      let nv = mSrc[min(select(j, i, takeA), MP.n - 1u)];
      va = select(va, nv, takeA);
      vb = select(nv, vb, takeA);
    }
  }
}

struct StatParams { nPairs: u32, nGroups: u32, nCells: u32, ranks: u32, toFixed: f32, p5: u32, p6: u32, p7: u32 }
@group(0) @binding(0) var<uniform> SP: StatParams;
@group(0) @binding(1) var<storage, read> orig: array<u32>;
@group(0) @binding(2) var<storage, read> sorted: array<u32>;
@group(0) @binding(3) var<storage, read> segStart: array<u32>;
@group(0) @binding(4) var<storage, read> groupStart: array<u32>;
@group(0) @binding(5) var<storage, read_write> rankSum: array<vec2u>;
@group(0) @binding(6) var<storage, read_write> sumOut: array<vec2u>;
@group(0) @binding(7) var<storage, read_write> sumSqOut: array<vec2u>;
@group(0) @binding(8) var<storage, read> rankAt: array<u32>;

fn keyToValue(key: u32) -> f32 {
  return bitcast<f32>(select(0xffffffffu - key, key - POS, key >= POS));
}

// Adds q · 2^32 (q = term · 2^(F−32)) to a fixed-point value (hi, lo): floor(q) is the high word,
// its fraction · 2^32 the low word (power-of-two scalings, floor and the subtraction are exact).
fn addFixed(acc: vec2u, q: f32) -> vec2u {
  let h = floor(q);
  let l = u32((q - h) * 4294967296.0);
  let lo = acc.y + l;
  return vec2u(acc.x + bitcast<u32>(i32(h)) + select(0u, 1u, lo < l), lo);
}

fn addU64(acc: vec2u, x: u32) -> vec2u {
  let lo = acc.y + x;
  return vec2u(acc.x + select(0u, 1u, lo < x), lo);
}

@compute @workgroup_size(64)
fn group_stats(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let p = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (p >= SP.nPairs) { return; }
  let gene = p / SP.nGroups;
  let s = segStart[gene];
  let e = segStart[gene + 1u];
  let scale = SP.toFixed;
  var r = vec2u(0u, 0u);
  var sm = vec2u(0u, 0u);
  var sq = vec2u(0u, 0u);
  for (var k = groupStart[p]; k < groupStart[p + 1u]; k++) {
    let key = orig[k];
    let v = keyToValue(key);
    let vh = bitcast<f32>(bitcast<u32>(v) & 0xfffff000u);
    let vl = v - vh;
    sm = addFixed(sm, v * scale);
    sq = addFixed(sq, (vh * vh) * scale);
    sq = addFixed(sq, (2.0 * vh * vl) * scale);
    sq = addFixed(sq, (vl * vl) * scale);
    if (SP.ranks != 0u) {
      var lo = s;
      var hi = e;
      while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (sorted[mid] < key) { lo = mid + 1u; } else { hi = mid; }
      }
      r = addU64(r, rankAt[lo]);
    }
  }
  rankSum[p] = r;
  sumOut[p] = sm;
  sumSqOut[p] = sq;
}

struct TieParams { nGenes: u32, nCells: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> TP: TieParams;
@group(0) @binding(5) var<storage, read_write> tieOut: array<vec2u>;
@group(0) @binding(6) var<storage, read_write> nNegOut: array<u32>;
@group(0) @binding(7) var<storage, read_write> rankOut: array<u32>;

// a · b as a u64 (hi, lo), from 16-bit halves.
fn mulWide(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let mid = a1 * b0;
  let mid2 = a0 * b1;
  var lo = a0 * b0;
  var hi = a1 * b1 + (mid >> 16u) + (mid2 >> 16u);
  let m1 = mid << 16u;
  lo += m1;
  hi += select(0u, 1u, lo < m1);
  let m2 = mid2 << 16u;
  lo += m2;
  hi += select(0u, 1u, lo < m2);
  return vec2u(hi, lo);
}

@compute @workgroup_size(64)
fn tie_sums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (j >= TP.nGenes) { return; }
  let s = segStart[j];
  let e = segStart[j + 1u];
  let zeros2 = 2u * (TP.nCells - (e - s));
  var acc = vec2u(0u, 0u);
  var neg = 0u;
  var i = s;
  while (i < e) {
    let key = sorted[i];
    var b = i + 1u;
    while (b < e && sorted[b] == key) { b++; }
    let t = b - i;
    if (key < POS) { neg += t; }
    let rank2 = (i - s) + (b - s) + 1u + select(0u, zeros2, key >= POS);
    for (var q = i; q < b; q++) { rankOut[q] = rank2; }
    // t³ − t = (t − 1) · t · (t + 1): (t − 1) · t as u64, times (t + 1), modulo 2^64.
    let p = mulWide(t - 1u, t);
    let low = mulWide(p.y, t + 1u);
    let term = vec2u(low.x + p.x * (t + 1u), low.y);
    let lo = acc.y + term.y;
    acc = vec2u(acc.x + term.x + select(0u, 1u, lo < term.y), lo);
    i = b;
  }
  tieOut[j] = acc;
  nNegOut[j] = neg;
}
