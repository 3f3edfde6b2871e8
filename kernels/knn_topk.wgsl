// knn_topk.wgsl — exact euclidean kNN: a block of queries against a block of reference rows,
// merging into each query's running top-m list (m = k − 1 neighbours besides the query itself).
// Bindings (group 0): 0 uniform Params; 1 queries: array<vec4f> (query chunk, row-major, d4
//   vec4s per row: coordinates zero-padded to a multiple of 4); 2 refs: array<vec4f> (reference
//   chunk, same layout); 3 bestD: array<f32> (nq × m, squared distances, ascending); 4 bestI:
//   array<u32> (nq × m, global row indices) — 3 and 4 persist across dispatches (the list is kept
//   there, not in a private array: insertions are rare once it has filled, and dynamically indexed
//   private arrays are slow to run and compile on lavapipe); the dispatch with P.first = 1
//   initialises them.
// Workgroup 64; the linear workgroup index is wid.x + wid.y * nwg.x (2-D grids for > 65535 groups).
// One invocation = one query, copied once into a private array (d ≤ 256); it scans reference rows
// rBegin..rEnd of the chunk four at a time (a 1 × 4 register tile: each query vec4 is used for four
// references; the reference rows are the same for every lane, so their loads are broadcasts).
// No shared memory, no barriers.
// Distance order: v += (q − r)∘(q − r) by vec4 fma over the row's vec4s, ascending, then
// d = (v.x + v.y) + (v.z + v.w) — the same expression for every pair, so d(i, j) == d(j, i) bit for
// bit and duplicates are exactly 0 apart (padding adds exact zeros). The query itself is skipped
// (the host puts it first).
// Ties: references arrive in ascending global index (chunks and blocks in order), and a candidate
// enters only if strictly closer than the current m-th, sliding past strictly larger entries —
// so equal distances keep the smaller index first, as knnExactCpu's (distance, index) order.

struct Params {
  nq: u32,      // queries in this chunk
  qGlobal: u32, // global index of the chunk's first query
  rBegin: u32,  // first reference row (within the ref chunk) this dispatch scans
  rEnd: u32,    // one past the last
  rGlobal: u32, // global index of the ref chunk's row 0
  m: u32,       // list length (k − 1)
  first: u32,   // 1: start from an empty list instead of reading bestD / bestI
  d4: u32,      // vec4s per row (coordinates zero-padded to a multiple of 4)
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> queries: array<vec4f>;
@group(0) @binding(2) var<storage, read> refs: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> bestD: array<f32>;
@group(0) @binding(4) var<storage, read_write> bestI: array<u32>;

const WG: u32 = 64u;

var<private> qv: array<vec4f, 64>;
var<private> worst: f32;
var<private> o: u32;

// Inserts (s, j) into the query's sorted list at bestD / bestI[o ..]; the caller checked s < worst.
fn insert(s: f32, j: u32) {
  var p = P.m - 1u;
  while (p > 0u) {
    let pd = bestD[o + p - 1u];
    if (pd <= s) { break; }
    bestD[o + p] = pd;
    bestI[o + p] = bestI[o + p - 1u];
    p -= 1u;
  }
  bestD[o + p] = s;
  bestI[o + p] = j;
  worst = bestD[o + P.m - 1u];
}

@compute @workgroup_size(64)
fn knn_block(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let q = (wid.x + wid.y * nwg.x) * WG + lid;
  if (q >= P.nq) { return; }
  let me = P.qGlobal + q;
  let qo = q * P.d4;
  for (var t = 0u; t < P.d4; t++) { qv[t] = queries[qo + t]; }
  o = q * P.m;
  if (P.first != 0u) {
    for (var p = 0u; p < P.m; p++) {
      bestD[o + p] = 0x1.fffffep+127f; // largest f32: any finite squared distance beats it
      bestI[o + p] = 0xffffffffu;
    }
  }
  worst = bestD[o + P.m - 1u];

  let last = P.rEnd - 1u;
  for (var r = P.rBegin; r < P.rEnd; r += 4u) {
    // Rows past the end are clamped to the last row and never offered.
    let r1 = min(r + 1u, last);
    let r2 = min(r + 2u, last);
    let r3 = min(r + 3u, last);
    let o0 = r * P.d4;
    let o1 = r1 * P.d4;
    let o2 = r2 * P.d4;
    let o3 = r3 * P.d4;
    var v0 = vec4f(0.0);
    var v1 = vec4f(0.0);
    var v2 = vec4f(0.0);
    var v3 = vec4f(0.0);
    for (var t = 0u; t < P.d4; t++) {
      let x = qv[t];
      let a0 = x - refs[o0 + t];
      let a1 = x - refs[o1 + t];
      let a2 = x - refs[o2 + t];
      let a3 = x - refs[o3 + t];
      v0 = fma(a0, a0, v0);
      v1 = fma(a1, a1, v1);
      v2 = fma(a2, a2, v2);
      v3 = fma(a3, a3, v3);
    }
    let s0 = (v0.x + v0.y) + (v0.z + v0.w);
    let s1 = (v1.x + v1.y) + (v1.z + v1.w);
    let s2 = (v2.x + v2.y) + (v2.z + v2.w);
    let s3 = (v3.x + v3.y) + (v3.z + v3.w);
    let j = P.rGlobal + r;
    if (s0 < worst && j != me) { insert(s0, j); }
    if (r + 1u < P.rEnd && s1 < worst && j + 1u != me) { insert(s1, j + 1u); }
    if (r + 2u < P.rEnd && s2 < worst && j + 2u != me) { insert(s2, j + 2u); }
    if (r + 3u < P.rEnd && s3 < worst && j + 3u != me) { insert(s3, j + 3u); }
  }

}
