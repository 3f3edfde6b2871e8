// knn_topk.wgsl — exact euclidean kNN: a block of queries against a block of reference rows,
// merging into each query's running top-m list (m = k − 1 neighbours besides the query itself).
// Bindings (group 0): 0 uniform Params; 1 queries: array<f32> (query chunk, row-major × DIM);
//   2 refs: array<f32> (reference chunk, row-major × DIM); 3 bestD: array<f32> (nq × m, squared
//   distances, ascending); 4 bestI: array<u32> (nq × m, global row indices) — 3 and 4 persist
//   across dispatches and are initialised by the dispatch with P.first = 1.
// DIM is a compile-time constant: the host replaces the line `const DIM: u32 = 64u;` with the
// real dimension, so the query row sits in a private array (registers / stack) and the
// coordinate loop has a fixed trip count.
// Workgroup 64; the linear workgroup index is wid.x + wid.y * nwg.x (2-D grids for > 65535 groups).
// One invocation = one query; it scans reference rows rBegin..rEnd of the chunk four at a time (a
// 1 × 4 register tile: each query coordinate is loaded once for four references; the reference
// rows are the same for every lane, so their loads are broadcasts). No shared memory, no barriers.
// Distance order: d(q, r) = Σ_t (q_t − r_t)², t ascending, one fma per coordinate into one f32
// accumulator — the same expression for every pair, so d(i, j) == d(j, i) bit for bit and
// duplicates are exactly 0 apart. The query itself is skipped (the host puts it first).
// Ties: references arrive in ascending global index (chunks and blocks in order), and a candidate
// enters only if strictly closer than the current m-th, sliding past strictly larger entries —
// so equal distances keep the smaller index first, as knnExactCpu's (distance, index) order.

struct Params {
  nq: u32,      // queries in this chunk
  qGlobal: u32, // global index of the chunk's first query
  rBegin: u32,  // first reference row (within the ref chunk) this dispatch scans
  rEnd: u32,    // one past the last
  rGlobal: u32, // global index of the ref chunk's row 0
  m: u32,       // list length, 1..KMAX
  first: u32,   // 1: start from an empty list instead of reading bestD / bestI
  p7: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> queries: array<f32>;
@group(0) @binding(2) var<storage, read> refs: array<f32>;
@group(0) @binding(3) var<storage, read_write> bestD: array<f32>;
@group(0) @binding(4) var<storage, read_write> bestI: array<u32>;

const DIM: u32 = 64u;
const KMAX: u32 = 64u;
const WG: u32 = 64u;

var<private> qv: array<f32, DIM>;
var<private> bd: array<f32, KMAX>;
var<private> bi: array<u32, KMAX>;
var<private> worst: f32;

// Inserts (s, j) into the sorted list; the caller checked s < worst.
fn insert(s: f32, j: u32) {
  var p = P.m - 1u;
  while (p > 0u && bd[p - 1u] > s) {
    bd[p] = bd[p - 1u];
    bi[p] = bi[p - 1u];
    p -= 1u;
  }
  bd[p] = s;
  bi[p] = j;
  worst = bd[P.m - 1u];
}

@compute @workgroup_size(64)
fn knn_block(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let q = (wid.x + wid.y * nwg.x) * WG + lid;
  if (q >= P.nq) { return; }
  let me = P.qGlobal + q;
  for (var t = 0u; t < DIM; t++) { qv[t] = queries[q * DIM + t]; }
  let o = q * P.m;
  if (P.first != 0u) {
    for (var p = 0u; p < P.m; p++) {
      bd[p] = 0x1.fffffep+127f; // largest f32: any finite squared distance beats it
      bi[p] = 0xffffffffu;
    }
  } else {
    for (var p = 0u; p < P.m; p++) {
      bd[p] = bestD[o + p];
      bi[p] = bestI[o + p];
    }
  }
  worst = bd[P.m - 1u];

  let last = P.rEnd - 1u;
  for (var r = P.rBegin; r < P.rEnd; r += 4u) {
    // Rows past the end are clamped to the last row and never offered.
    let r1 = min(r + 1u, last);
    let r2 = min(r + 2u, last);
    let r3 = min(r + 3u, last);
    let o0 = r * DIM;
    let o1 = r1 * DIM;
    let o2 = r2 * DIM;
    let o3 = r3 * DIM;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    for (var t = 0u; t < DIM; t++) {
      let x = qv[t];
      let a0 = x - refs[o0 + t];
      let a1 = x - refs[o1 + t];
      let a2 = x - refs[o2 + t];
      let a3 = x - refs[o3 + t];
      s0 = fma(a0, a0, s0);
      s1 = fma(a1, a1, s1);
      s2 = fma(a2, a2, s2);
      s3 = fma(a3, a3, s3);
    }
    let j = P.rGlobal + r;
    if (s0 < worst && j != me) { insert(s0, j); }
    if (r + 1u < P.rEnd && s1 < worst && j + 1u != me) { insert(s1, j + 1u); }
    if (r + 2u < P.rEnd && s2 < worst && j + 2u != me) { insert(s2, j + 2u); }
    if (r + 3u < P.rEnd && s3 < worst && j + 3u != me) { insert(s3, j + 3u); }
  }

  for (var p = 0u; p < P.m; p++) {
    bestD[o + p] = bd[p];
    bestI[o + p] = bi[p];
  }
}
