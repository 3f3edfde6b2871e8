// connectivities.wgsl — umap's smooth_knn_dist and compute_membership_strengths for a row chunk
// of a kNN list (self first, then neighbours by distance).
// Bindings (group 0): 0 uniform Params; 1 dist: array<f32> (nRows × k, row-major);
//   2 idx: array<i32> (nRows × k; −1 = missing neighbour); 3 sigmas: array<f32> out (nRows);
//   4 rhos: array<f32> out (nRows); 5 weights: array<f32> out (nRows × k, directed memberships).
// Workgroup 64; the linear workgroup index is wid.x + wid.y * nwg.x (2-D grids for > 65535 groups).
// One invocation = one row: rho = its first non-zero distance; sigma by umap's 64-step binary
// search on Σ_{j≥1} exp(−max(0, d_j − rho)/sigma) = log2(k), all in f32 as umap (numba float32
// locals), floored at 1e-3 × the row's mean distance (or × the global mean, passed in, when
// rho = 0); then w_j = exp(−(d_j − rho)/sigma), 1 where d_j ≤ rho, 0 for the row itself and for
// missing neighbours. Sums run over j ascending. The fuzzy union is assembled on the host.

struct Params {
  nRows: u32,
  rowGlobal: u32,   // global index of the chunk's first row (to recognise the self entry)
  k: u32,
  p3: u32,
  goal: f32,        // log2(k)
  meanFloor: f32,   // 1e-3 × mean of all distances
  p6: f32,
  p7: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dist: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> sigmas: array<f32>;
@group(0) @binding(4) var<storage, read_write> rhos: array<f32>;
@group(0) @binding(5) var<storage, read_write> weights: array<f32>;

const WG: u32 = 64u;
const N_ITER: u32 = 64u;
const TOLERANCE: f32 = 1e-5;
const MIN_K_DIST_SCALE: f32 = 1e-3;

@compute @workgroup_size(64)
fn smooth_knn(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= P.nRows) { return; }
  let k = P.k;
  let o = i * k;

  var rho = 0.0;
  for (var j = 0u; j < k; j++) {
    if (dist[o + j] > 0.0) {
      rho = dist[o + j];
      break;
    }
  }

  var lo = 0.0;
  var hi = 0.0;
  var hiInf = true; // umap's hi = inf
  var mid = 1.0;
  for (var it = 0u; it < N_ITER; it++) {
    var psum = 0.0;
    for (var j = 1u; j < k; j++) {
      let dd = dist[o + j] - rho;
      psum += select(1.0, exp(-(dd / mid)), dd > 0.0);
    }
    if (abs(psum - P.goal) < TOLERANCE) { break; }
    if (psum > P.goal) {
      hi = mid;
      hiInf = false;
      mid = (lo + hi) / 2.0;
    } else {
      lo = mid;
      mid = select((lo + hi) / 2.0, mid * 2.0, hiInf);
    }
  }
  var sigma = mid;
  if (rho > 0.0) {
    var rowSum = 0.0;
    for (var j = 0u; j < k; j++) { rowSum += dist[o + j]; }
    sigma = max(sigma, MIN_K_DIST_SCALE * (rowSum / f32(k)));
  } else {
    sigma = max(sigma, P.meanFloor);
  }
  sigmas[i] = sigma;
  rhos[i] = rho;

  let me = i32(P.rowGlobal + i);
  for (var j = 0u; j < k; j++) {
    let c = idx[o + j];
    let dd = dist[o + j] - rho;
    var w = 1.0;
    if (c == me || c < 0) {
      w = 0.0;
    } else if (dd > 0.0 && sigma != 0.0) {
      w = exp(-(dd / sigma));
    }
    weights[o + j] = w;
  }
}
