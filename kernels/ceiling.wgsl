// ceiling.wgsl — biology-free kernels that measure what the device can do (src/gpu/ceiling.ts):
// a pattern fill, a streaming vec4 copy, and two f32 matrix products C = A·B (row-major, padded by
// the host so no bounds checks are needed: m, n to the tile, k to 4 or 16).
//
// fill_pattern — Bindings: 0 uniform {n4, seed}; 2 dst: array<vec4u> out. Workgroup 256, one
//   invocation = one vec4: a hash of (index, seed) squashed to f32 in [−1, 1) (so no memory
//   compression can shortcut the copies, and matmul inputs are non-trivial). No reduction.
// copy_vec4 — Bindings: 0 uniform {n4}; 1 src: array<vec4f>; 2 dst: array<vec4f> out.
//   Workgroup 256, one invocation = one 16-byte element. No reduction.
// matmul_reg — Bindings: 0 uniform {m4, k4, n4} (rows/4, k/4, cols/4); 3 A: array<vec4f> (m × k);
//   4 B: array<vec4f> (k × n); 5 C: array<vec4f> out (m × n). Workgroup 64, one invocation = a
//   4×4 block of C held in registers (no workgroup memory, no barriers: what lavapipe prefers);
//   neighbouring lanes take neighbouring column blocks, so B reads are contiguous and A reads
//   are shared. Reduction order: k increasing, four k at a time ((a.x·b0 + a.y·b1) + a.z·b2) + a.w·b3
//   added to the accumulator.
// matmul_tiled — Same bindings; m, n padded to 64, k to 16. Workgroup 256 (16×16), one workgroup
//   = a 64×64 tile of C, one invocation = a 4×4 block in registers; per step of 16 k the
//   workgroup stages a 64×16 slice of A (transposed) and a 16×64 slice of B in workgroup memory
//   (one vec4 load of each per invocation), then each invocation does 16 rank-1 updates.
//   Reduction order: k increasing, one k at a time.

struct FillParams { n4: u32, seed: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> FP: FillParams;
@group(0) @binding(2) var<storage, read_write> fillDst: array<vec4f>;

fn hash(x: u32) -> u32 {
  var h = x * 0x9e3779b9u;
  h = (h ^ (h >> 16u)) * 0x85ebca6bu;
  h = (h ^ (h >> 13u)) * 0xc2b2ae35u;
  return h ^ (h >> 16u);
}

fn unit(x: u32) -> f32 {
  return f32(hash(x) >> 8u) / 8388608.0 - 1.0;
}

@compute @workgroup_size(256)
fn fill_pattern(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (i >= FP.n4) { return; }
  let b = (i ^ (FP.seed * 0x27d4eb2du)) * 4u;
  fillDst[i] = vec4f(unit(b), unit(b + 1u), unit(b + 2u), unit(b + 3u));
}

struct CopyParams { n4: u32, p1: u32, p2: u32, p3: u32 }
@group(0) @binding(0) var<uniform> CP: CopyParams;
@group(0) @binding(1) var<storage, read> copySrc: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> copyDst: array<vec4f>;

@compute @workgroup_size(256)
fn copy_vec4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (i >= CP.n4) { return; }
  copyDst[i] = copySrc[i];
}

struct MatmulParams { m4: u32, k4: u32, n4: u32, p3: u32 }
@group(0) @binding(0) var<uniform> MM: MatmulParams;
@group(0) @binding(3) var<storage, read> A: array<vec4f>;
@group(0) @binding(4) var<storage, read> B: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> C: array<vec4f>;

@compute @workgroup_size(64)
fn matmul_reg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let id = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (id >= MM.m4 * MM.n4) { return; }
  let k4n = MM.k4;
  let n4 = MM.n4;
  let c4 = id % n4;
  let r = (id / n4) * 4u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k4 = 0u; k4 < k4n; k4++) {
    let a0 = A[r * k4n + k4];
    let a1 = A[(r + 1u) * k4n + k4];
    let a2 = A[(r + 2u) * k4n + k4];
    let a3 = A[(r + 3u) * k4n + k4];
    let kb = k4 * 4u * n4 + c4;
    let b0 = B[kb];
    let b1 = B[kb + n4];
    let b2 = B[kb + 2u * n4];
    let b3 = B[kb + 3u * n4];
    acc0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
    acc1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
    acc2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
    acc3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
  }
  C[r * n4 + c4] = acc0;
  C[(r + 1u) * n4 + c4] = acc1;
  C[(r + 2u) * n4 + c4] = acc2;
  C[(r + 3u) * n4 + c4] = acc3;
}

var<workgroup> tileA: array<f32, 1024>; // [k 0..15][row 0..63]
var<workgroup> tileB: array<vec4f, 256>; // [k 0..15][col4 0..15]

@compute @workgroup_size(256)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let tile = wid.x + wid.y * nwg.x;
  let tilesN = MM.n4 / 16u;
  if (tile >= (MM.m4 / 16u) * tilesN) { return; }
  let k4n = MM.k4;
  let n4 = MM.n4;
  let row0 = (tile / tilesN) * 64u;
  let col40 = (tile % tilesN) * 16u;
  let ty = lid / 16u;
  let tx = lid % 16u;
  let aRow = lid / 4u;
  let aK = (lid % 4u) * 4u;
  let bK = lid / 16u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k4 = 0u; k4 < k4n; k4 += 4u) {
    let a = A[(row0 + aRow) * k4n + k4 + lid % 4u];
    tileA[aK * 64u + aRow] = a.x;
    tileA[(aK + 1u) * 64u + aRow] = a.y;
    tileA[(aK + 2u) * 64u + aRow] = a.z;
    tileA[(aK + 3u) * 64u + aRow] = a.w;
    tileB[lid] = B[(k4 * 4u + bK) * n4 + col40 + tx];
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      let b = tileB[k * 16u + tx];
      let base = k * 64u + ty * 4u;
      acc0 += tileA[base] * b;
      acc1 += tileA[base + 1u] * b;
      acc2 += tileA[base + 2u] * b;
      acc3 += tileA[base + 3u] * b;
    }
    workgroupBarrier();
  }
  let r = row0 + ty * 4u;
  C[r * n4 + col40 + tx] = acc0;
  C[(r + 1u) * n4 + col40 + tx] = acc1;
  C[(r + 2u) * n4 + col40 + tx] = acc2;
  C[(r + 3u) * n4 + col40 + tx] = acc3;
}
