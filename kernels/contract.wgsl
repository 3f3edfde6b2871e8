// contract.wgsl — contraction of a weighted symmetric graph by a node labelling
// (src/ops/graphGpu.ts contractGraphGpu), bit-identical run to run: weights are 64-bit fixed-point
// integers (lo, hi) summed with integer atomics (order-free), and each coarse row is emitted
// sorted by neighbour id, so the slot order of the hash tables (timing-dependent) never shows.
// Sequence: caps → table_sizes → scan(tsize) → clear table → insert → mark → scan(flags) →
// compact → emit.
//
// Bindings (group 0): 0 uniform P; 1 indptr: fine CSR row pointers (n+1); 2 indices: fine
//   neighbours; 3 wq: fine arc weights·S as (lo, hi); 4 kq: fine strengths·S as (lo, hi);
//   5 labels: coarse node of each fine node; 6 cap: atomic, per coarse node the sum of its
//   members' degrees; 7 ckq: atomic, coarse strengths (lo, hi); 8 bad: atomic counter of labels
//   ≥ N; 9 tsize: hash-table size per coarse node; 10 toff: exclusive scan of tsize (N+1);
//   11 table: atomic, 3 words per slot (key = neighbour+1, 0 when empty; weight lo; weight hi);
//   12 flags: 1 per filled slot; 13 fpos: exclusive scan of flags (T+1); 14 tmp: filled slots
//   compacted, 3 words each (neighbour, lo, hi), coarse rows contiguous and in row order;
//   15 cindptr (N+1), 16 cindices, 17 cwq (lo, hi), 18 cweights: the coarse CSR.
//
// caps — Bindings 0, 1, 4, 5, 6, 7, 8. Workgroup 256, one invocation = one fine node v (2-D grid,
//   linear index wid.x + wid.y·nwg.x): cap[labels[v]] += deg(v); ckq[labels[v]] += kq[v] (64-bit
//   add: atomic add of lo, carry into hi when it wrapped). Labels ≥ N are counted in bad.
// table_sizes — Bindings 0, 6, 9. Workgroup 256, one invocation = one coarse node c:
//   tsize[c] = 2·min(cap[c], N−1) — at least twice its distinct neighbours (load ≤ 1/2).
// insert — Bindings 0, 1, 2, 3, 5, 10, 11. Workgroup 256, one invocation = one fine arc k (its
//   row v by binary search in indptr): c = labels[v], d = labels[indices[k]]; nothing when c = d
//   (the arc is already in ckq); otherwise linear probing from hash(d) in c's table
//   [toff[c], toff[c+1]), claiming an empty key by compare-exchange, then a 64-bit atomic add of
//   wq[k] into the slot.
// mark — Bindings 0, 11, 12. Workgroup 256, one invocation = one slot: flags = key ≠ 0.
// compact — Bindings 0, 11, 13, 14. Workgroup 256, one invocation = one slot: a filled slot goes
//   to tmp[fpos[slot]] as (key−1, lo, hi).
// emit — Bindings 0, 10, 13, 14, 15, 16, 17, 18. Workgroup 64, one workgroup = one coarse row c,
//   whose entries are tmp[fpos[toff[c]] .. fpos[toff[c+1]]). Each entry's rank = number of
//   entries of the row with a smaller neighbour (distinct within a row), counted against tiles of
//   64 neighbours in workgroup memory; the entry is written at cindptr[c] + rank with its f32
//   weight (f32(hi)·2^32 + f32(lo))·invS (S a power of two: same as dividing by S).

struct Params {
  n: u32, N: u32, nArcs: u32, T: u32,
  invS: f32, p5: u32, p6: u32, p7: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> wq: array<u32>;
@group(0) @binding(4) var<storage, read> kq: array<u32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> cap: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> ckq: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> bad: array<atomic<u32>>;
@group(0) @binding(9) var<storage, read_write> tsize: array<u32>;
@group(0) @binding(10) var<storage, read> toff: array<u32>;
@group(0) @binding(11) var<storage, read_write> table: array<atomic<u32>>;
@group(0) @binding(12) var<storage, read_write> flags: array<u32>;
@group(0) @binding(13) var<storage, read> fpos: array<u32>;
@group(0) @binding(14) var<storage, read_write> tmp: array<u32>;
@group(0) @binding(15) var<storage, read_write> cindptr: array<u32>;
@group(0) @binding(16) var<storage, read_write> cindices: array<u32>;
@group(0) @binding(17) var<storage, read_write> cwq: array<u32>;
@group(0) @binding(18) var<storage, read_write> cweights: array<f32>;

fn linear(wid: vec3u, nwg: vec3u, lid: u32, wg: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * wg + lid;
}

fn hash32(x0: u32) -> u32 {
  // lowbias32 (Wellons), as kernels/louvain.wgsl.
  var x = x0;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

@compute @workgroup_size(256)
fn caps(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let v = linear(wid, nwg, lid, 256u);
  if (v >= P.n) { return; }
  let c = labels[v];
  if (c >= P.N) {
    atomicAdd(&bad[0], 1u);
    return;
  }
  atomicAdd(&cap[c], indptr[v + 1u] - indptr[v]);
  let lo = kq[2u * v];
  let old = atomicAdd(&ckq[2u * c], lo);
  atomicAdd(&ckq[2u * c + 1u], kq[2u * v + 1u] + select(0u, 1u, old + lo < old));
}

@compute @workgroup_size(256)
fn table_sizes(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let c = linear(wid, nwg, lid, 256u);
  if (c >= P.N) { return; }
  tsize[c] = 2u * min(atomicLoad(&cap[c]), P.N - 1u);
}

@compute @workgroup_size(256)
fn insert(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let k = linear(wid, nwg, lid, 256u);
  if (k >= P.nArcs) { return; }
  // Row of arc k: the largest v with indptr[v] <= k (indptr[0] = 0 <= k < indptr[n]).
  var a = 0u;
  var b = P.n;
  while (b - a > 1u) {
    let mid = a + (b - a) / 2u;
    if (indptr[mid] <= k) { a = mid; } else { b = mid; }
  }
  let c = labels[a];
  let d = labels[indices[k]];
  if (c == d) { return; }
  let base = toff[c];
  let size = toff[c + 1u] - base;
  let key = d + 1u;
  var s = hash32(d) % size;
  loop {
    let r = atomicCompareExchangeWeak(&table[3u * (base + s)], 0u, key);
    if (r.exchanged || r.old_value == key) { break; }
    // A weak exchange may fail spuriously on an empty slot: retry the same slot then.
    if (r.old_value != 0u) { s = select(s + 1u, 0u, s + 1u == size); }
  }
  let slot = 3u * (base + s);
  let lo = wq[2u * k];
  let old = atomicAdd(&table[slot + 1u], lo);
  atomicAdd(&table[slot + 2u], wq[2u * k + 1u] + select(0u, 1u, old + lo < old));
}

@compute @workgroup_size(256)
fn mark(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let s = linear(wid, nwg, lid, 256u);
  if (s >= P.T) { return; }
  flags[s] = select(0u, 1u, atomicLoad(&table[3u * s]) != 0u);
}

@compute @workgroup_size(256)
fn compact(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let s = linear(wid, nwg, lid, 256u);
  if (s >= P.T) { return; }
  let key = atomicLoad(&table[3u * s]);
  if (key == 0u) { return; }
  let e = fpos[s];
  tmp[3u * e] = key - 1u;
  tmp[3u * e + 1u] = atomicLoad(&table[3u * s + 1u]);
  tmp[3u * e + 2u] = atomicLoad(&table[3u * s + 2u]);
}

var<workgroup> tile: array<u32, 64>;
var<workgroup> rowStart: u32;
var<workgroup> rowEnd: u32;

@compute @workgroup_size(64)
fn emit(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let c = wid.x + wid.y * nwg.x;
  // Uniform per workgroup, so returning before the barriers is allowed.
  if (c >= P.N) { return; }
  if (lid == 0u) {
    rowStart = fpos[toff[c]];
    rowEnd = fpos[toff[c + 1u]];
  }
  let a = workgroupUniformLoad(&rowStart);
  let b = workgroupUniformLoad(&rowEnd);
  if (lid == 0u) {
    cindptr[c] = a;
    if (c + 1u == P.N) { cindptr[P.N] = b; }
  }
  for (var base = a; base < b; base += 64u) {
    let e = base + lid;
    var mine = 0xffffffffu;
    if (e < b) { mine = tmp[3u * e]; }
    var rank = 0u;
    for (var t = a; t < b; t += 64u) {
      workgroupBarrier();
      if (t + lid < b) { tile[lid] = tmp[3u * (t + lid)]; }
      workgroupBarrier();
      let m = min(64u, b - t);
      for (var j = 0u; j < m; j++) { rank += select(0u, 1u, tile[j] < mine); }
    }
    if (e < b) {
      let o = a + rank;
      let lo = tmp[3u * e + 1u];
      let hi = tmp[3u * e + 2u];
      cindices[o] = mine;
      cwq[2u * o] = lo;
      cwq[2u * o + 1u] = hi;
      cweights[o] = (f32(hi) * 4294967296.0 + f32(lo)) * P.invS;
    }
  }
}
