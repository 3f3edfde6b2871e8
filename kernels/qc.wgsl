// qc.wgsl — per-cell QC sums over the rows of a CSR chunk.
// Bindings (group 0): 0 uniform {nRows}; 1 indptr: array<u32> (nRows+1, rebased to the chunk);
//   2 indices: array<u32>; 3 data: array<f32>; 4 mito: array<u32> (1 = mitochondrial feature);
//   5 nGenes: array<u32> out; 6 total: array<f32> out; 7 mito total: array<f32> out (per row).
// Workgroup 64; the linear workgroup index is wid.x + wid.y * nwg.x (2-D grids for > 65535 groups).
// One invocation = one row. Reduction order: the row's entries in storage order, summed in
// blocks of 32 into a block partial that is then added to the running total (bounds f32 error;
// integer counts below 2^24 are exact either way).

struct Params { nRows: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read> mito: array<u32>;
@group(0) @binding(5) var<storage, read_write> nGenes: array<u32>;
@group(0) @binding(6) var<storage, read_write> total: array<f32>;
@group(0) @binding(7) var<storage, read_write> mitoTotal: array<f32>;

const WG: u32 = 64u;
const BLOCK: u32 = 32u;

@compute @workgroup_size(64)
fn cell_qc(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= P.nRows) { return; }
  let end = indptr[r + 1u];
  var k = indptr[r];
  var genes = 0u;
  var sum = 0.0;
  var mt = 0.0;
  while (k < end) {
    let blockEnd = min(k + BLOCK, end);
    var s = 0.0;
    var m = 0.0;
    for (; k < blockEnd; k++) {
      let v = data[k];
      genes += select(0u, 1u, v != 0.0);
      s += v;
      m += select(0.0, v, mito[indices[k]] != 0u);
    }
    sum += s;
    mt += m;
  }
  nGenes[r] = genes;
  total[r] = sum;
  mitoTotal[r] = mt;
}
