// relabel.wgsl — index maps on u32 arrays for the level loop of community detection on the
// device (src/ops/leiden.ts): which ids are in use, renumbering through a table, scattering.
// Workgroup 64; one invocation = one element i < P.n (2-D grid, linear index wid.x + wid.y·nwg.x).
// Each output element is written by exactly one invocation (scatter: by several with one value),
// so results do not depend on scheduling.
//
// used_flags — bindings 0 P, 1 counts (stride P.stride, offset P.offset), 5 out:
//   out[i] = 1 if counts[i·stride + offset] != 0 else 0.
// gather — bindings 0 P, 2 idx, 3 table, 5 out: out[i] = table[idx[i]].
// scatter — bindings 0 P, 2 idx, 3 table, 5 out: out[idx[i]] = table[i]; callers guarantee that
//   all i with one idx[i] carry the same table[i].

struct Params { n: u32, stride: u32, offset: u32, p3: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn used_flags(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= P.n) { return; }
  out[i] = select(0u, 1u, counts[i * P.stride + P.offset] != 0u);
}

@compute @workgroup_size(64)
fn gather(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= P.n) { return; }
  out[i] = table[idx[i]];
}

@compute @workgroup_size(64)
fn scatter(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= P.n) { return; }
  out[idx[i]] = table[i];
}
