// scan.wgsl — exclusive prefix sum of u32 (src/gpu/scan.ts), multi-level: scan_blocks scans
// blocks of 1024 elements and writes each block's total; the block totals are scanned the same
// way (recursively, on the host's plan), then add_offsets adds each block's scanned offset.
// Integer sums (mod 2^32): the result does not depend on execution order.
//
// Bindings (group 0): 0 uniform P {m: elements to write, nIn: elements of src, the rest read
//   as 0}; 1 src: array<u32>; 2 dst: array<u32> (m); 3 sums: array<u32>, one per block;
//   4 offs: array<u32>, the exclusive scan of sums.
//
// scan_blocks — Bindings 0–3. Workgroup 256, one workgroup = one block of 1024 elements (2-D
//   grid, block index wid.x + wid.y·nwg.x); one invocation = 4 consecutive elements, summed in
//   order; the 256 per-invocation totals are scanned in workgroup memory (Hillis–Steele, 8
//   steps). dst[j] = sum of src[i] for block start ≤ i < j; sums[block] = the block's total.
// add_offsets — Bindings 0, 2, 4. Workgroup 256, one workgroup = one block of 1024 elements,
//   one invocation = elements lid, lid+256, lid+512, lid+768 of it: dst[j] += offs[block].

struct Params { m: u32, nIn: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read_write> sums: array<u32>;
@group(0) @binding(4) var<storage, read> offs: array<u32>;

const WG: u32 = 256u;
const PER: u32 = 4u;
const BLOCK: u32 = 1024u;

var<workgroup> part: array<u32, 256>;

@compute @workgroup_size(256)
fn scan_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let blk = wid.x + wid.y * nwg.x;
  // Uniform per workgroup, so returning before the barriers is allowed.
  if (blk >= (P.m + BLOCK - 1u) / BLOCK) { return; }
  let base = blk * BLOCK + lid * PER;
  var x: array<u32, 4>;
  var s = 0u;
  for (var i = 0u; i < PER; i++) {
    x[i] = s;
    if (base + i < P.nIn) { s += src[base + i]; }
  }
  part[lid] = s;
  for (var d = 1u; d < WG; d <<= 1u) {
    workgroupBarrier();
    var t = 0u;
    if (lid >= d) { t = part[lid - d]; }
    workgroupBarrier();
    part[lid] += t;
  }
  workgroupBarrier();
  let before = part[lid] - s;
  for (var i = 0u; i < PER; i++) {
    if (base + i < P.m) { dst[base + i] = before + x[i]; }
  }
  if (lid == WG - 1u) { sums[blk] = part[lid]; }
}

@compute @workgroup_size(256)
fn add_offsets(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let blk = wid.x + wid.y * nwg.x;
  if (blk == 0u || blk >= (P.m + BLOCK - 1u) / BLOCK) { return; }
  let off = offs[blk];
  for (var i = 0u; i < PER; i++) {
    let j = blk * BLOCK + i * WG + lid;
    if (j < P.m) { dst[j] += off; }
  }
}
