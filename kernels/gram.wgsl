// gram.wgsl — SᵀS for the sparse part S of the scaled, clipped matrix (src/ops/gram.ts header):
// s_ij = clip((x_ij − μ_j)/σ_j) − c_j on the stored entries of a CSR row chunk, c_j = clip(−μ_j/σ_j).
//
// scale_entries — Bindings: 0 uniform {nnz, clip (0/1), maxValue: f32}; 2 indices: array<u32>;
//   3 data: array<f32>; 4 feat: array<vec4f> (μ_j, σ_j, c_j, 1 if c_j is unclipped);
//   5 sdata: array<f32> out. Workgroup 64, one invocation = one stored entry. An unclipped entry
//   with unclipped c_j is written as x/σ (= z − c exactly, without z − c's cancellation).
//
// gram_rows — Bindings: 0 uniform {p, jCount, jStart, nOrder, toFixedHi: f32}; 1 indptr:
//   array<u32> (rows+1, rebased); 2 indices: array<u32>; 3 sdata: array<f32>; 4 cscPtr:
//   array<u32> (p+1): this chunk's entries grouped by column; 5 cscEntry: array<vec2u> (CSR
//   position k of entry (i, j), row i), rows increasing within a column; 6 order: array<u32>
//   (output rows j of this block, heaviest first, so neighbouring lanes have similar work);
//   7 gram: array<vec2u> (jCount × p), 8 colSum: array<vec2u> (jCount): 64-bit two's-complement
//   fixed-point accumulators (hi, lo), value = (hi · 2^32 + lo) · 2^−F.
//   Workgroup 8, one invocation = one Gram row j (Gustavson): for each cell i with s_ij ≠ 0, in
//   increasing i, add s_ij · s_ik for the row's entries k ≥ j (indices increase within a row, so
//   the CSR position of (i, j) starts the upper triangle), and s_ij to colSum[j]. Only this
//   invocation writes row j: no races. Each float32 term is converted exactly (to 2^−F) to fixed
//   point and added as an integer, so the sums are exact and order-free. Why: the host's
//   −(Sᵀ1)(1ᵀS)/n cancels up to (μ/σ)² of SᵀS; exact sums, and a colSum made from the very same
//   float32 s values, make that cancellation clean (a rounding bias shared by a dense column's
//   entries cancels out). Chunks accumulate in place. Entries k < j of a row stay as cleared.

struct ScaleParams { nnz: u32, clip: u32, maxValue: f32, p3: u32 }
@group(0) @binding(0) var<uniform> SP: ScaleParams;
@group(0) @binding(2) var<storage, read> sIndices: array<u32>;
@group(0) @binding(3) var<storage, read> sData: array<f32>;
@group(0) @binding(4) var<storage, read> feat: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> sOut: array<f32>;

@compute @workgroup_size(64)
fn scale_entries(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) lid: u32) {
  let k = (wid.x + wid.y * nwg.x) * 64u + lid;
  if (k >= SP.nnz) { return; }
  let f = feat[sIndices[k]];
  let x = sData[k];
  let z = (x - f.x) / f.y;
  var s: f32;
  if (SP.clip != 0u && z > SP.maxValue) {
    s = SP.maxValue - f.z;
  } else if (SP.clip != 0u && z < -SP.maxValue) {
    s = -SP.maxValue - f.z;
  } else if (f.w != 0.0) {
    s = x / f.y;
  } else {
    s = z - f.z;
  }
  sOut[k] = s;
}

struct GramParams { p: u32, jCount: u32, jStart: u32, nOrder: u32, toFixedHi: f32 }
@group(0) @binding(0) var<uniform> GP: GramParams;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> sdata: array<f32>;
@group(0) @binding(4) var<storage, read> cscPtr: array<u32>;
@group(0) @binding(5) var<storage, read> cscEntry: array<vec2u>;
@group(0) @binding(6) var<storage, read> order: array<u32>;
@group(0) @binding(7) var<storage, read_write> gram: array<vec2u>;
@group(0) @binding(8) var<storage, read_write> colSum: array<vec2u>;

// Adds q · 2^32 (q = term · 2^(F−32)) to a fixed-point value: the floor of q is the high word, its
// fraction · 2^32 the low word (power-of-two scalings, floor and the subtraction are exact).
fn addFixed(acc: vec2u, q: f32) -> vec2u {
  let h = floor(q);
  let l = u32((q - h) * 4294967296.0);
  let lo = acc.y + l;
  return vec2u(acc.x + bitcast<u32>(i32(h)) + select(0u, 1u, lo < l), lo);
}

@compute @workgroup_size(8)
fn gram_rows(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
             @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * 8u + lid;
  if (t >= GP.nOrder) { return; }
  let j = order[t];
  let o = (j - GP.jStart) * GP.p;
  var sum = colSum[j - GP.jStart];
  for (var e = cscPtr[j]; e < cscPtr[j + 1u]; e++) {
    let ent = cscEntry[e];
    let sj = sdata[ent.x];
    if (sj == 0.0) { continue; }
    let sjq = sj * GP.toFixedHi;
    sum = addFixed(sum, sjq);
    let end = indptr[ent.y + 1u];
    for (var k = ent.x; k < end; k++) {
      let a = o + indices[k];
      gram[a] = addFixed(gram[a], sjq * sdata[k]);
    }
  }
  colSum[j - GP.jStart] = sum;
}
