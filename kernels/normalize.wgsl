// normalize.wgsl — normalize_total(target) + log1p on the values of a CSR chunk (structure kept).
// Bindings (group 0): 0 uniform {nRows, targetSum: f32}; 1 indptr: array<u32> (nRows+1, rebased);
//   2 data: array<f32>; 3 out: array<f32> (same layout as data).
// Workgroup 64; linear workgroup index wid.x + wid.y * nwg.x.
// One invocation = one row: its total (entries in storage order, blocks of 32 into a partial,
// partials added in order — exact for integer counts below 2^24), factor = total / target in f32
// (as scanpy's float32 path), then out = log1p(x / factor) per entry. A row with total <= 0 is
// written as zeros. WGSL has no log1p: below 0.5 it is 2·atanh(s), s = x / (2 + x), by its odd
// series (relative error ~1e-7, where log(1 + x) would lose digits); above, log(1 + x).

struct Params { nRows: u32, targetSum: f32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> data: array<f32>;
@group(0) @binding(3) var<storage, read_write> outData: array<f32>;

const WG: u32 = 64u;
const BLOCK: u32 = 32u;

fn log1p_f32(x: f32) -> f32 {
  if (abs(x) < 0.5) {
    let s = x / (2.0 + x);
    let s2 = s * s;
    let series = 1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0)))));
    return 2.0 * (s + s * s2 * series);
  }
  return log(1.0 + x);
}

@compute @workgroup_size(64)
fn normalize_log1p(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= P.nRows) { return; }
  let start = indptr[r];
  let end = indptr[r + 1u];
  var k = start;
  var sum = 0.0;
  while (k < end) {
    let blockEnd = min(k + BLOCK, end);
    var s = 0.0;
    for (; k < blockEnd; k++) { s += data[k]; }
    sum += s;
  }
  if (sum <= 0.0) {
    for (k = start; k < end; k++) { outData[k] = 0.0; }
    return;
  }
  let factor = sum / P.targetSum;
  for (k = start; k < end; k++) { outData[k] = log1p_f32(data[k] / factor); }
}
