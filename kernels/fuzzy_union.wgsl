// fuzzy_union.wgsl — umap's fuzzy union A + Aᵀ − A∘Aᵀ of the directed membership strengths A
// (kernels/connectivities.wgsl smooth_knn) on the device (src/ops/connectivities.ts
// fuzzySimplicialSetGpu), bit-identical run to run: atomics only count and claim integer slots,
// and every list whose order they would decide is re-placed by rank, so no order ever shows.
// Sequence: per forward chunk fwd_dedup → fwd_rank; scan(indeg) = revPtr; rev_scatter (every
// forward chunk × reverse chunk) → rev_rank; union_count; scan(outCnt) = outPtr; union_write.
//
// Bindings (group 0): 0 uniform P; 1 idx: i32 kNN slots of a forward chunk (rows × k, −1 =
//   missing); 2 w: their directed weights; 3 tmpKey, 4 tmpVal: per slot (column + 1, summed
//   weight), key 0 = dropped; 5 fwdKey, 6 fwdVal: each row's kept entries sorted by column
//   (key = column + 1), then keys 0 (cleared) to the row's end; 7 indeg: atomic, entries per
//   column (n); 8 revPtr: exclusive scan of indeg (n+1); 9 fill: atomic claims per column (n,
//   cleared); 10 revTmpKey, 11 revTmpVal: a reverse chunk's entries (source row, weight), each
//   column's in claim order; 12 revKey, 13 revVal: the same, each column sorted by source row;
//   14 outCnt: union entries per row (n); 15 outPtr: exclusive scan of outCnt (n+1); 16 outCol,
//   17 outVal: the union's entries of a row range. Forward arrays are indexed from row fwdRow0,
//   reverse arrays from revPtr[revRow0] = revBase, outputs from outPtr[rowStart] = outBase.
// Grids: linear invocation index (wid.x + wid.y·nwg.x)·WG + lid (2-D grids for > 65535 groups).
//
// fwd_dedup — Bindings 0–4. Workgroup 256, one invocation = one kNN slot t of row r (rows × k):
//   dropped when its column is missing (< 0) or appeared at an earlier slot of the row; otherwise
//   its weight plus those of the later slots with the same column, added in slot order (scipy's
//   coo → csr duplicate sum), dropped when that sum is 0 (csr eliminate_zeros).
// fwd_rank — Bindings 0, 3–7. Workgroup 256, one invocation = one kept slot: placed at the row's
//   start + its rank (kept keys of the row are distinct: rank = number smaller); indeg[column]++.
// rev_scatter — Bindings 0, 5, 6, 8–11. Workgroup 256, one invocation = one forward slot (i, c)
//   with c in the reverse chunk's rows [revRow0, revRow1): (i, a_ic) written at revPtr[c] +
//   atomicAdd(fill[c], 1).
// rev_rank — Bindings 0, 8, 10–13. Workgroup 256, one invocation = one reverse entry (its column
//   by binary search in revPtr): placed at its column's start + its rank by source row (distinct
//   within a column).
// union_count / union_write — Bindings 0, 5, 6, 8, 12, 13 and 14 / 15–17. Workgroup 64, one
//   invocation = one row i: the merge of its sorted forward entries (a) with its sorted reverse
//   entries (b), by column; v = (a + b) − (a·b) in f32 with 0 for a missing side, scipy's order;
//   entries with v = 0 are left out. The product is rounded on its own (its bits pass through an
//   XOR with the uniform zero, which a compiler cannot see through), so no a·b + c contraction
//   into an FMA can change the result. union_count writes the number of entries, union_write
//   the entries at outPtr[i].

struct Params {
  count: u32,    // invocations: slots, entries or rows
  rowStart: u32, // union passes: global index of the first row
  k: u32,
  n: u32,
  fwdRow0: u32,  // global index of the forward chunk's first row
  revRow0: u32,  // the reverse chunk holds columns [revRow0, revRow1)
  revRow1: u32,
  revBase: u32,  // revPtr[revRow0]
  outBase: u32,  // outPtr[rowStart]
  zero: u32,     // always 0
  p10: u32,
  p11: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> tmpKey: array<u32>;
@group(0) @binding(4) var<storage, read_write> tmpVal: array<f32>;
@group(0) @binding(5) var<storage, read_write> fwdKey: array<u32>;
@group(0) @binding(6) var<storage, read_write> fwdVal: array<f32>;
@group(0) @binding(7) var<storage, read_write> indeg: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read> revPtr: array<u32>;
@group(0) @binding(9) var<storage, read_write> fill: array<atomic<u32>>;
@group(0) @binding(10) var<storage, read_write> revTmpKey: array<u32>;
@group(0) @binding(11) var<storage, read_write> revTmpVal: array<f32>;
@group(0) @binding(12) var<storage, read_write> revKey: array<u32>;
@group(0) @binding(13) var<storage, read_write> revVal: array<f32>;
@group(0) @binding(14) var<storage, read_write> outCnt: array<u32>;
@group(0) @binding(15) var<storage, read> outPtr: array<u32>;
@group(0) @binding(16) var<storage, read_write> outCol: array<u32>;
@group(0) @binding(17) var<storage, read_write> outVal: array<f32>;

const NONE: u32 = 0xffffffffu;

fn linear(wid: vec3u, nwg: vec3u, lid: u32, wg: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * wg + lid;
}

@compute @workgroup_size(256)
fn fwd_dedup(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let t = linear(wid, nwg, lid, 256u);
  if (t >= P.count) { return; }
  let o = (t / P.k) * P.k;
  let c = idx[t];
  var key = 0u;
  var sum = 0.0;
  if (c >= 0) {
    var first = true;
    for (var j = o; j < t; j++) {
      if (idx[j] == c) {
        first = false;
        break;
      }
    }
    if (first) {
      sum = w[t];
      for (var j = t + 1u; j < o + P.k; j++) {
        if (idx[j] == c) { sum += w[j]; }
      }
      if (sum != 0.0) { key = u32(c) + 1u; }
    }
  }
  tmpKey[t] = key;
  tmpVal[t] = sum;
}

@compute @workgroup_size(256)
fn fwd_rank(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let t = linear(wid, nwg, lid, 256u);
  if (t >= P.count) { return; }
  let key = tmpKey[t];
  if (key == 0u) { return; }
  let o = (t / P.k) * P.k;
  var rank = 0u;
  for (var j = o; j < o + P.k; j++) {
    let x = tmpKey[j];
    rank += select(0u, 1u, x != 0u && x < key);
  }
  fwdKey[o + rank] = key;
  fwdVal[o + rank] = tmpVal[t];
  atomicAdd(&indeg[key - 1u], 1u);
}

@compute @workgroup_size(256)
fn rev_scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let t = linear(wid, nwg, lid, 256u);
  if (t >= P.count) { return; }
  let key = fwdKey[t];
  if (key == 0u) { return; }
  let c = key - 1u;
  if (c < P.revRow0 || c >= P.revRow1) { return; }
  let pos = revPtr[c] - P.revBase + atomicAdd(&fill[c], 1u);
  revTmpKey[pos] = P.fwdRow0 + t / P.k;
  revTmpVal[pos] = fwdVal[t];
}

@compute @workgroup_size(256)
fn rev_rank(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
            @builtin(local_invocation_index) lid: u32) {
  let e = linear(wid, nwg, lid, 256u);
  if (e >= P.count) { return; }
  // Column of entry e: the largest c with revPtr[c] <= e + revBase (empty columns skipped).
  let g = e + P.revBase;
  var a = P.revRow0;
  var b = P.revRow1;
  while (b - a > 1u) {
    let mid = a + (b - a) / 2u;
    if (revPtr[mid] <= g) { a = mid; } else { b = mid; }
  }
  let s = revPtr[a] - P.revBase;
  let f = revPtr[a + 1u] - P.revBase;
  let mine = revTmpKey[e];
  var rank = 0u;
  for (var t = s; t < f; t++) { rank += select(0u, 1u, revTmpKey[t] < mine); }
  revKey[s + rank] = mine;
  revVal[s + rank] = revTmpVal[e];
}

// Merge state of one row: forward entries [p, pe), reverse entries [q, qe).
struct Merge { p: u32, pe: u32, q: u32, qe: u32 }

fn mergeStart(i: u32) -> Merge {
  let p = (i - P.fwdRow0) * P.k;
  var pe = p;
  while (pe < p + P.k && fwdKey[pe] != 0u) { pe++; }
  return Merge(p, pe, revPtr[i] - P.revBase, revPtr[i + 1u] - P.revBase);
}

fn mergeMore(m: Merge) -> bool {
  return m.p < m.pe || m.q < m.qe;
}

// The next union entry (column, v) of the row, in increasing column order.
fn mergeNext(m: ptr<function, Merge>) -> vec2u {
  var ca = NONE;
  if ((*m).p < (*m).pe) { ca = fwdKey[(*m).p] - 1u; }
  var cb = NONE;
  if ((*m).q < (*m).qe) { cb = revKey[(*m).q]; }
  let c = min(ca, cb);
  var a = 0.0;
  var b = 0.0;
  if (ca == c) {
    a = fwdVal[(*m).p];
    (*m).p += 1u;
  }
  if (cb == c) {
    b = revVal[(*m).q];
    (*m).q += 1u;
  }
  let ab = bitcast<f32>(bitcast<u32>(a * b) ^ P.zero);
  return vec2u(c, bitcast<u32>((a + b) - ab));
}

@compute @workgroup_size(64)
fn union_count(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let r = linear(wid, nwg, lid, 64u);
  if (r >= P.count) { return; }
  let i = P.rowStart + r;
  var m = mergeStart(i);
  var cnt = 0u;
  while (mergeMore(m)) {
    let e = mergeNext(&m);
    cnt += select(0u, 1u, bitcast<f32>(e.y) != 0.0);
  }
  outCnt[i] = cnt;
}

@compute @workgroup_size(64)
fn union_write(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let r = linear(wid, nwg, lid, 64u);
  if (r >= P.count) { return; }
  let i = P.rowStart + r;
  var m = mergeStart(i);
  var o = outPtr[i] - P.outBase;
  while (mergeMore(m)) {
    let e = mergeNext(&m);
    let v = bitcast<f32>(e.y);
    if (v != 0.0) {
      outCol[o] = e.x;
      outVal[o] = v;
      o += 1u;
    }
  }
}
