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
// One invocation = four consecutive queries (copied once into a private array, d ≤ 256), scanning
// reference rows rBegin..rEnd of the chunk two at a time: a 4 × 2 register tile, so each
// reference load (the same address in every lane) feeds four queries — on lavapipe those loads,
// not the arithmetic, set the speed (measured on pbmc3k: 1 × 4 tile 2.0 s, 2 × 4 1.6 s, 4 × 2
// 0.9 s, 8 × 1 1.3 s). No shared memory, no barriers.
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

var<private> qv: array<array<vec4f, 64>, 4>;

// Inserts (s, j) into the sorted list at bestD / bestI[o ..] (the caller checked s < its m-th
// entry) and returns the new m-th entry.
fn insert(o: u32, s: f32, j: u32) -> f32 {
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
  return bestD[o + P.m - 1u];
}

fn initList(o: u32) {
  for (var p = 0u; p < P.m; p++) {
    bestD[o + p] = 0x1.fffffep+127f; // largest f32: any finite squared distance beats it
    bestI[o + p] = 0xffffffffu;
  }
}

@compute @workgroup_size(64)
fn knn_block(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * WG + lid;
  let q0 = 4u * g;
  if (q0 >= P.nq) { return; }
  // Four consecutive queries; past the end they repeat the last one and never insert.
  var me: array<u32, 4>;
  var o: array<u32, 4>;
  var worst: array<f32, 4>;
  for (var v = 0u; v < 4u; v++) {
    let q = min(q0 + v, P.nq - 1u);
    for (var t = 0u; t < P.d4; t++) { qv[v][t] = queries[q * P.d4 + t]; }
    me[v] = P.qGlobal + q;
    o[v] = q * P.m;
    if (q0 + v < P.nq) {
      if (P.first != 0u) { initList(o[v]); }
      worst[v] = bestD[o[v] + P.m - 1u];
    } else {
      worst[v] = -1.0;
    }
  }

  let last = P.rEnd - 1u;
  for (var r = P.rBegin; r < P.rEnd; r += 2u) {
    // A row past the end is clamped to the last row and never offered.
    let o0 = r * P.d4;
    let o1 = min(r + 1u, last) * P.d4;
    var a0 = vec4f(0.0);
    var a1 = vec4f(0.0);
    var b0 = vec4f(0.0);
    var b1 = vec4f(0.0);
    var c0 = vec4f(0.0);
    var c1 = vec4f(0.0);
    var e0 = vec4f(0.0);
    var e1 = vec4f(0.0);
    for (var t = 0u; t < P.d4; t++) {
      let y0 = refs[o0 + t];
      let y1 = refs[o1 + t];
      var x = qv[0][t];
      var z = x - y0;
      a0 = fma(z, z, a0);
      z = x - y1;
      a1 = fma(z, z, a1);
      x = qv[1][t];
      z = x - y0;
      b0 = fma(z, z, b0);
      z = x - y1;
      b1 = fma(z, z, b1);
      x = qv[2][t];
      z = x - y0;
      c0 = fma(z, z, c0);
      z = x - y1;
      c1 = fma(z, z, c1);
      x = qv[3][t];
      z = x - y0;
      e0 = fma(z, z, e0);
      z = x - y1;
      e1 = fma(z, z, e1);
    }
    var s0 = vec4f((a0.x + a0.y) + (a0.z + a0.w), (b0.x + b0.y) + (b0.z + b0.w),
                   (c0.x + c0.y) + (c0.z + c0.w), (e0.x + e0.y) + (e0.z + e0.w));
    var s1 = vec4f((a1.x + a1.y) + (a1.z + a1.w), (b1.x + b1.y) + (b1.z + b1.w),
                   (c1.x + c1.y) + (c1.z + c1.w), (e1.x + e1.y) + (e1.z + e1.w));
    let j = P.rGlobal + r;
    for (var v = 0u; v < 4u; v++) {
      if (s0[v] < worst[v] && j != me[v]) { worst[v] = insert(o[v], s0[v], j); }
      if (r + 1u < P.rEnd && s1[v] < worst[v] && j + 1u != me[v]) { worst[v] = insert(o[v], s1[v], j + 1u); }
    }
  }
}
