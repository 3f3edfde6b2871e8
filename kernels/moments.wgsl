// moments.wgsl — per-feature sums for mean and variance over the rows of a CSR chunk, with a
// fixed-order reduction (no float atomics, so results are bit-identical run to run).
// Bindings (group 0): 0 uniform {nRows, nCols, nBlocks, rowsPerBlock}; 1 indptr: array<u32>
//   (nRows+1, rebased); 2 indices: array<u32>; 3 data: array<f32>; 4 shift: array<f32> (nCols);
//   5 partial: array<f32> (nBlocks × nCols); 6 count: array<u32> (nBlocks × nCols);
//   7 outSum: array<f32> (nCols); 8 outCount: array<u32> (nCols); 9 clip: array<f32> (nCols).
// block_sums / block_sq_dev: workgroup 16, one invocation = one block of rowsPerBlock consecutive
//   rows; it adds its rows' entries, in storage order, into its own slice partial[b·nCols ..] (and
//   count), which the host clears first — slices are disjoint, so no races. block_sums adds x and
//   counts entries; block_sq_dev adds (x − shift_j)² (second pass, shift = the mean from pass 1).
// block_clipped_sums / block_clipped_sq: same blocks, for seurat_v3 HVG (counts clipped at clip_j):
//   over the entries with x < clip_j, Σ x (and the count of the others, x ≥ clip_j) resp. Σ x²;
//   the host adds count·clip_j and count·clip_j². Unshifted, so integer counts sum exactly
//   (while partials stay < 2^24) in any order.
// reduce_blocks: workgroup 64, one invocation = one feature j; sums partial[b·nCols + j] (and
//   count) over b = 0, 1, … in order.

struct Params { nRows: u32, nCols: u32, nBlocks: u32, rowsPerBlock: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read> shift: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> count: array<u32>;
@group(0) @binding(7) var<storage, read_write> outSum: array<f32>;
@group(0) @binding(8) var<storage, read_write> outCount: array<u32>;
@group(0) @binding(9) var<storage, read> clip: array<f32>;

fn linear(wid: vec3u, nwg: vec3u, lid: u32, wg: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * wg + lid;
}

@compute @workgroup_size(16)
fn block_sums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let b = linear(wid, nwg, lid, 16u);
  if (b >= P.nBlocks) { return; }
  let base = b * P.nCols;
  let rowEnd = min((b + 1u) * P.rowsPerBlock, P.nRows);
  for (var k = indptr[b * P.rowsPerBlock]; k < indptr[rowEnd]; k++) {
    let o = base + indices[k];
    partial[o] += data[k];
    count[o] += 1u;
  }
}

@compute @workgroup_size(16)
fn block_sq_dev(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let b = linear(wid, nwg, lid, 16u);
  if (b >= P.nBlocks) { return; }
  let base = b * P.nCols;
  let rowEnd = min((b + 1u) * P.rowsPerBlock, P.nRows);
  for (var k = indptr[b * P.rowsPerBlock]; k < indptr[rowEnd]; k++) {
    let j = indices[k];
    let d = data[k] - shift[j];
    partial[base + j] += d * d;
  }
}

@compute @workgroup_size(16)
fn block_clipped_sums(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let b = linear(wid, nwg, lid, 16u);
  if (b >= P.nBlocks) { return; }
  let base = b * P.nCols;
  let rowEnd = min((b + 1u) * P.rowsPerBlock, P.nRows);
  for (var k = indptr[b * P.rowsPerBlock]; k < indptr[rowEnd]; k++) {
    let j = indices[k];
    let x = data[k];
    if (x < clip[j]) {
      partial[base + j] += x;
    } else {
      count[base + j] += 1u;
    }
  }
}

@compute @workgroup_size(16)
fn block_clipped_sq(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let b = linear(wid, nwg, lid, 16u);
  if (b >= P.nBlocks) { return; }
  let base = b * P.nCols;
  let rowEnd = min((b + 1u) * P.rowsPerBlock, P.nRows);
  for (var k = indptr[b * P.rowsPerBlock]; k < indptr[rowEnd]; k++) {
    let j = indices[k];
    let x = data[k];
    if (x < clip[j]) {
      partial[base + j] += x * x;
    }
  }
}

@compute @workgroup_size(64)
fn reduce_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) lid: u32) {
  let j = linear(wid, nwg, lid, 64u);
  if (j >= P.nCols) { return; }
  var s = 0.0;
  var c = 0u;
  for (var b = 0u; b < P.nBlocks; b++) {
    s += partial[b * P.nCols + j];
    c += count[b * P.nCols + j];
  }
  outSum[j] = s;
  outCount[j] = c;
}
