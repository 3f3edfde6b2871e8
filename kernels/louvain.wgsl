// louvain.wgsl — parallel local moving of Louvain/Leiden (modularity with resolution γ) and
// Leiden's refinement, on a symmetric weighted graph without self loops in its adjacency
// (src/ops/communityGpu.ts; used by leidenGpu and louvainGpu).
// One sub-round = choose_move (or choose_refine) for the nodes of one colour, a clear of `comm`,
// apply_totals. Colour of node v in round r: hash(v, seed, r) mod nColours, so neighbours rarely
// move together.
//
// Shared bindings (group 0): 0 uniform P; 1 indptr: array<u32> (n+1); 2 indices: array<u32>;
//   3 weights: array<f32>; 4 kq: array<u32>, node strength k_v·S as an exact 64-bit integer
//   (lo, hi), self loop included; 5 memb: array<u32>, community (or refined sub-community) of each
//   node; 6 choice: array<u32>, chosen community; 7 comm: array<atomic<u32>> (3 per community:
//   K lo word, K hi word, member count) — community strength K_c = (hi·2^32 + lo) / S, an exact
//   64-bit integer sum, so its value does not depend on the order the atomics land;
//   8 moves: array<atomic<u32>>, moves counted per round slot; 9 part: array<u32>, the
//   unrefined community of each node (choose_refine only).
//
// choose_move — Bindings 0–7. Workgroup 64, one invocation = one node v (2-D grid, linear index
//   wid.x + wid.y·nwg.x). Nodes of another colour copy memb[v] to choice[v]. Otherwise v scans
//   its CSR row; for each neighbour community c (at its first occurrence in the row) it sums the
//   arc weights to c over the rest of the row, in storage order (O(deg²) compares, no scratch
//   memory, order fixed), and evaluates the modularity gain of moving from a to c:
//     (w_c − w_a) − γ·k_v·(K_c − K_a + k_v) / (2m)        (undirected scale)
//   It keeps the largest gain above a noise threshold (1e-6·k_v), ties to the smaller community
//   id. A node alone in its community does not move into another singleton of larger id (two
//   singleton neighbours of one colour would otherwise swap forever).
// choose_refine — Bindings 0–7 and 9 (memb = refined sub-communities, comm = their totals).
//   Workgroup 64, one invocation = one node v. As choose_move, but only a node still alone in
//   its sub-community moves, only into sub-communities of neighbours in its own community
//   part[v], with gain w_c − γ·k_v·K_c / (2m) (leaving a singleton costs nothing); the same
//   threshold, tie and singleton rules.
// apply_totals — Bindings 0, 4, 5, 6, 7, 8. Workgroup 64, one invocation = one node: adopts
//   choice[v] (counting a move in moves[P.slot]) and adds k_v and 1 to its community's totals
//   (integer atomics with carry: exact, order-free). `comm` must be cleared before it runs.
// batch_move / batch_refine — for small graphs (n ≤ the host's SMALL_LEVEL): one workgroup of 256
//   runs a whole batch of 4 rounds × nColours sub-rounds (rounds P.round …) in one dispatch, each
//   sub-round exactly as choose + clear + apply above (the same functions, the same order of
//   effects: the phases are separated by storage and workgroup barriers instead of dispatches), so
//   the result is bit-identical to the dispatch-per-phase path. Invocation lid handles nodes lid,
//   lid + 256, …. Bindings 0–7 and 9 (batch_move never reads `part`, but reaches the code that
//   does, so its layout has it; the host binds any read-only buffer); moves of round r are counted in
//   comm[3n + r] (comm holds 3n + 4 words), so no eighth storage binding is needed.

struct Params {
  n: u32, colour: u32, nColours: u32, seed: u32,
  round: u32, slot: u32, p6: u32, p7: u32,
  gamma: f32, invTw: f32, invS: f32, p11: f32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> indptr: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> kq: array<u32>;
@group(0) @binding(5) var<storage, read_write> memb: array<u32>;
@group(0) @binding(6) var<storage, read_write> choice: array<u32>;
@group(0) @binding(7) var<storage, read_write> comm: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> moves: array<atomic<u32>>;
@group(0) @binding(9) var<storage, read> part: array<u32>;

const WG: u32 = 64u;

fn hash32(x0: u32) -> u32 {
  // lowbias32 (Wellons): a well-mixed 32-bit integer hash.
  var x = x0;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

fn fixedToF32(lo: u32, hi: u32) -> f32 {
  return (f32(hi) * 4294967296.0 + f32(lo)) * P.invS;
}

fn strength(c: u32) -> f32 {
  return fixedToF32(atomicLoad(&comm[3u * c]), atomicLoad(&comm[3u * c + 1u]));
}

fn nodeStrength(v: u32) -> f32 {
  return fixedToF32(kq[2u * v], kq[2u * v + 1u]);
}

fn myColour(v: u32, colour: u32, round: u32) -> bool {
  let h = hash32(v ^ hash32(P.seed ^ hash32(round + 0x9e3779b9u)));
  return h % P.nColours == colour;
}

/** A singleton moving into a singleton of larger id stays (the pair would otherwise swap forever). */
fn singletonRule(a: u32, best: u32) -> u32 {
  if (best != a && best > a && atomicLoad(&comm[3u * a + 2u]) == 1u && atomicLoad(&comm[3u * best + 2u]) == 1u) {
    return a;
  }
  return best;
}

@compute @workgroup_size(64)
fn choose_move(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
               @builtin(local_invocation_index) lid: u32) {
  let v = (wid.x + wid.y * nwg.x) * WG + lid;
  if (v < P.n) { chooseMove(v, P.colour, P.round); }
}

fn chooseMove(v: u32, colour: u32, round: u32) {
  let a = memb[v];
  if (!myColour(v, colour, round)) {
    choice[v] = a;
    return;
  }
  let start = indptr[v];
  let end = indptr[v + 1u];
  let kv = nodeStrength(v);
  var wa = 0.0;
  for (var k = start; k < end; k++) {
    if (memb[indices[k]] == a) { wa += weights[k]; }
  }
  let base = strength(a) - kv;
  let scale = P.gamma * kv * P.invTw;
  var best = a;
  var bestGain = 1e-6 * kv;
  for (var k = start; k < end; k++) {
    let c = memb[indices[k]];
    if (c == a) { continue; }
    var seen = false;
    for (var j = start; j < k; j++) {
      if (memb[indices[j]] == c) { seen = true; break; }
    }
    if (seen) { continue; }
    var wc = 0.0;
    for (var j = k; j < end; j++) {
      if (memb[indices[j]] == c) { wc += weights[j]; }
    }
    let gain = (wc - wa) - scale * (strength(c) - base);
    if (gain > bestGain || (gain == bestGain && best != a && c < best)) {
      best = c;
      bestGain = gain;
    }
  }
  choice[v] = singletonRule(a, best);
}

@compute @workgroup_size(64)
fn choose_refine(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_index) lid: u32) {
  let v = (wid.x + wid.y * nwg.x) * WG + lid;
  if (v < P.n) { chooseRefine(v, P.colour, P.round); }
}

fn chooseRefine(v: u32, colour: u32, round: u32) {
  let a = memb[v];
  if (!myColour(v, colour, round) || atomicLoad(&comm[3u * a + 2u]) != 1u) {
    choice[v] = a;
    return;
  }
  let start = indptr[v];
  let end = indptr[v + 1u];
  let pv = part[v];
  let kv = nodeStrength(v);
  let scale = P.gamma * kv * P.invTw;
  var best = a;
  var bestGain = 1e-6 * kv;
  for (var k = start; k < end; k++) {
    let u = indices[k];
    if (part[u] != pv) { continue; }
    let c = memb[u];
    if (c == a) { continue; }
    var seen = false;
    for (var j = start; j < k; j++) {
      let x = indices[j];
      if (part[x] == pv && memb[x] == c) { seen = true; break; }
    }
    if (seen) { continue; }
    var wc = 0.0;
    for (var j = k; j < end; j++) {
      let x = indices[j];
      if (part[x] == pv && memb[x] == c) { wc += weights[j]; }
    }
    let gain = wc - scale * strength(c);
    if (gain > bestGain || (gain == bestGain && best != a && c < best)) {
      best = c;
      bestGain = gain;
    }
  }
  choice[v] = singletonRule(a, best);
}

@compute @workgroup_size(64)
fn apply_totals(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_index) lid: u32) {
  let v = (wid.x + wid.y * nwg.x) * WG + lid;
  if (v < P.n && applyTotals(v)) { atomicAdd(&moves[P.slot], 1u); }
}

/** Adopts choice[v] and adds v to its community's totals; true if v moved. */
fn applyTotals(v: u32) -> bool {
  let c = choice[v];
  let moved = c != memb[v];
  if (moved) { memb[v] = c; }
  let lo = kq[2u * v];
  let old = atomicAdd(&comm[3u * c], lo);
  let carry = select(0u, 1u, old + lo < old);
  let hi = kq[2u * v + 1u] + carry;
  if (hi != 0u) { atomicAdd(&comm[3u * c + 1u], hi); }
  atomicAdd(&comm[3u * c + 2u], 1u);
  return moved;
}

const SMALL_WG: u32 = 256u;

/** One batch of colour sub-rounds in one workgroup (batch_move / batch_refine); refine picks the chooser. */
fn smallBatch(lid: u32, refine: bool) {
  let n = P.n;
  if (lid < 4u) { atomicStore(&comm[3u * n + lid], 0u); }
  for (var r = 0u; r < 4u; r++) {
    for (var colour = 0u; colour < P.nColours; colour++) {
      for (var v = lid; v < n; v += SMALL_WG) {
        if (refine) { chooseRefine(v, colour, P.round + r); } else { chooseMove(v, colour, P.round + r); }
      }
      storageBarrier();
      for (var i = lid; i < 3u * n; i += SMALL_WG) { atomicStore(&comm[i], 0u); }
      storageBarrier();
      for (var v = lid; v < n; v += SMALL_WG) {
        if (applyTotals(v)) { atomicAdd(&comm[3u * n + r], 1u); }
      }
      storageBarrier();
    }
  }
}

@compute @workgroup_size(256)
fn batch_move(@builtin(local_invocation_index) lid: u32) {
  smallBatch(lid, false);
}

@compute @workgroup_size(256)
fn batch_refine(@builtin(local_invocation_index) lid: u32) {
  smallBatch(lid, true);
}
