// knn_ivf.wgsl — IVF-flat kNN (src/ops/knnIvf.ts knnIvfGpu): two entry points sharing one
// distance and one list-insert routine, both bit-identical to the CPU twin knnIvfCpu.
// Bindings (group 0; `probe` uses 0–4, `search` 0–7):
//   0 uniform Params;
//   1 queries: array<vec4f> — the query chunk, row-major, d4 vec4s per row (zero-padded);
//   2 refs: array<vec4f> — the reference chunk (probe: centroids; search: points in list order),
//     global rows rStart .. rStart + rRows;
//   3 bestD: array<f32>, 4 bestI: array<u32> — per query a list of `len` entries sorted by
//     (squared distance, id), kept on the device across dispatches (P.first = 1 initialises it);
//   5 probes: array<u32> (nq × nProbe list ids), 6 listStart: array<u32> (nLists + 1 row offsets
//     into the list-ordered points), 7 refIds: array<u32> (original index of each ref-chunk row).
// Workgroup 64; linear workgroup index wid.x + wid.y * nwg.x (2-D grids past 65535 groups).
// probe: one invocation = one query, every reference row of the chunk in ascending order, keeping
//   the `len` nearest (id = rStart + row): k-means assignment (len 1) and the probe lists.
// search: one invocation = one query (skipping itself), the rows of each of its probed lists that
//   lie in the chunk; ids are the rows' original indices.
// Distance: per coordinate z = q − r (one correctly rounded f32 subtraction), split by masking the
// low 12 mantissa bits into h (≤ 12 significant bits) and l = z − h (exact, ≤ 12 bits); the lane
// accumulator (lane = coordinate mod 4) adds h·h, then (2h)·l, then l·l. Every product is exact in
// f32, so a compiler that contracts a + x·y into an fma gets the same bits as one that does not:
// each step is one correctly rounded f32 addition, reproducible on the CPU. Lanes combine as
// (x + y) + (z + w). Inputs lie on a 2^-40 grid (the host snaps them), so no value is subnormal
// and flush-to-zero cannot differ. A row is abandoned once that combination of the partial lane
// sums (every 16 coordinates) exceeds the list's worst: f32 sums of non-negative terms only grow,
// so an abandoned row would have been rejected anyway and completed sums are unaffected.
// Ties: (distance, id) order explicitly, so the result does not depend on scan order.

struct Params {
  nq: u32,      // queries in the chunk
  qBegin: u32,  // first query (within the chunk) of this dispatch
  qGlobal: u32, // global row of the chunk's query 0 (search: list-ordered row, to skip itself)
  rStart: u32,  // global row of refs[0]
  rRows: u32,   // rows in the ref chunk
  len: u32,     // list length per query
  first: u32,   // 1: start from an empty list
  d4: u32,      // vec4s per row
  nProbe: u32,  // search: lists per query
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> queries: array<vec4f>;
@group(0) @binding(2) var<storage, read> refs: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> bestD: array<f32>;
@group(0) @binding(4) var<storage, read_write> bestI: array<u32>;
@group(0) @binding(5) var<storage, read> probes: array<u32>;
@group(0) @binding(6) var<storage, read> listStart: array<u32>;
@group(0) @binding(7) var<storage, read> refIds: array<u32>;

const WG: u32 = 64u;
const BIG: f32 = 0x1.fffffep+127f; // largest f32: an empty slot
const HI_MASK = vec4u(0xfffff000u);

fn dist2(qo: u32, ro: u32, bound: f32) -> f32 {
  var a = vec4f(0.0);
  for (var t = 0u; t < P.d4; t++) {
    let z = queries[qo + t] - refs[ro + t];
    let h = bitcast<vec4f>(bitcast<vec4u>(z) & HI_MASK);
    let l = z - h;
    a = a + h * h;
    a = a + (2.0 * h) * l;
    a = a + l * l;
    if ((t & 3u) == 3u) {
      let s = (a.x + a.y) + (a.z + a.w);
      if (s > bound) { return s; }
    }
  }
  return (a.x + a.y) + (a.z + a.w);
}

// Inserts (s, j) into the list at o (the caller checked it beats the last entry).
fn insert(o: u32, s: f32, j: u32) {
  var p = P.len - 1u;
  while (p > 0u) {
    let pd = bestD[o + p - 1u];
    let pi = bestI[o + p - 1u];
    if (pd < s || (pd == s && pi < j)) { break; }
    bestD[o + p] = pd;
    bestI[o + p] = pi;
    p -= 1u;
  }
  bestD[o + p] = s;
  bestI[o + p] = j;
}

fn start(o: u32) {
  if (P.first != 0u) {
    for (var p = 0u; p < P.len; p++) {
      bestD[o + p] = BIG;
      bestI[o + p] = 0xffffffffu;
    }
  }
}

@compute @workgroup_size(64)
fn probe(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
         @builtin(local_invocation_index) lid: u32) {
  let q = P.qBegin + (wid.x + wid.y * nwg.x) * WG + lid;
  if (q >= P.nq) { return; }
  let o = q * P.len;
  start(o);
  let last = o + P.len - 1u;
  var wd = bestD[last];
  var wi = bestI[last];
  for (var r = 0u; r < P.rRows; r++) {
    let s = dist2(q * P.d4, r * P.d4, wd);
    let id = P.rStart + r;
    if (s < wd || (s == wd && id < wi)) {
      insert(o, s, id);
      wd = bestD[last];
      wi = bestI[last];
    }
  }
}

@compute @workgroup_size(64)
fn search(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let q = P.qBegin + (wid.x + wid.y * nwg.x) * WG + lid;
  if (q >= P.nq) { return; }
  let o = q * P.len;
  start(o);
  let last = o + P.len - 1u;
  var wd = bestD[last];
  var wi = bestI[last];
  let me = P.qGlobal + q;
  let rEnd = P.rStart + P.rRows;
  for (var p = 0u; p < P.nProbe; p++) {
    let c = probes[q * P.nProbe + p];
    let lo = max(listStart[c], P.rStart);
    let hi = min(listStart[c + 1u], rEnd);
    for (var j = lo; j < hi; j++) {
      if (j == me) { continue; }
      let r = j - P.rStart;
      let s = dist2(q * P.d4, r * P.d4, wd);
      if (s < wd || (s == wd && refIds[r] < wi)) {
        insert(o, s, refIds[r]);
        wd = bestD[last];
        wi = bestI[last];
      }
    }
  }
}
