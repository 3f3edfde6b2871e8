// snn.wgsl — Seurat's shared-nearest-neighbour counts: for each row i and each row c whose kNN set
// (self included) meets i's, S_ic = |N(i) ∩ N(c)|. Weights and pruning are done on the host.
// Bindings (group 0): 0 uniform Params; 1 nbr: array<u32> (n × k, each row's kNN set sorted
//   ascending); 2 revPtr: array<u32> (n + 1); 3 rev: array<u32> (n × k: rev[revPtr[m]..] = the rows
//   whose kNN set holds m, ascending); 4 rowOff: array<u32> (chunk rows + 1, snn_write only: where
//   each row's entries start, relative to the chunk); 5 counts: array<u32> out (chunk rows,
//   snn_count only); 6 outCol: array<u32> out; 7 outS: array<u32> out (snn_write only).
// Workgroup 64; the linear workgroup index is wid.x + wid.y * nwg.x (2-D grids for > 65535 groups).
// One invocation = one row i: for m in N(i) ascending, for c in rev(m), a merge of the two sorted
// kNN sets gives S_ic and their smallest shared element; c is emitted only when that element is m,
// so each c once (at its first shared neighbour). snn_count counts the entries, snn_write writes
// them in that order; the host sorts each row by column. Integer arithmetic only.

struct Params { nRows: u32, rowStart: u32, k: u32, p3: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> nbr: array<u32>;
@group(0) @binding(2) var<storage, read> revPtr: array<u32>;
@group(0) @binding(3) var<storage, read> rev: array<u32>;
@group(0) @binding(4) var<storage, read> rowOff: array<u32>;
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;
@group(0) @binding(6) var<storage, read_write> outCol: array<u32>;
@group(0) @binding(7) var<storage, read_write> outS: array<u32>;

const WG: u32 = 64u;

// (|N(a) ∩ N(b)|, smallest shared element) by a merge of the two sorted rows.
fn intersect(a: u32, b: u32) -> vec2u {
  var p = a * P.k;
  var q = b * P.k;
  let pe = p + P.k;
  let qe = q + P.k;
  var s = 0u;
  var first = 0xffffffffu;
  while (p < pe && q < qe) {
    let x = nbr[p];
    let y = nbr[q];
    if (x == y) {
      if (s == 0u) { first = x; }
      s += 1u;
      p += 1u;
      q += 1u;
    } else if (x < y) {
      p += 1u;
    } else {
      q += 1u;
    }
  }
  return vec2u(s, first);
}

fn rowIndex(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(64)
fn snn_count(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let ii = rowIndex(wid, nwg, lid);
  if (ii >= P.nRows) { return; }
  let i = P.rowStart + ii;
  var cnt = 0u;
  for (var p = 0u; p < P.k; p++) {
    let m = nbr[i * P.k + p];
    for (var r = revPtr[m]; r < revPtr[m + 1u]; r++) {
      if (intersect(i, rev[r]).y == m) { cnt += 1u; }
    }
  }
  counts[ii] = cnt;
}

@compute @workgroup_size(64)
fn snn_write(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let ii = rowIndex(wid, nwg, lid);
  if (ii >= P.nRows) { return; }
  let i = P.rowStart + ii;
  var o = rowOff[ii];
  for (var p = 0u; p < P.k; p++) {
    let m = nbr[i * P.k + p];
    for (var r = revPtr[m]; r < revPtr[m + 1u]; r++) {
      let c = rev[r];
      let sf = intersect(i, c);
      if (sf.y == m) {
        outCol[o] = c;
        outS[o] = sf.x;
        o += 1u;
      }
    }
  }
}
