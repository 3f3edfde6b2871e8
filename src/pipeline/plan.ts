/**
 * Memory plan of a run: whether the count matrix steps (QC, normalize, HVG, the HVG matrix for
 * PCA, markers, the written X) hold whole matrices or work a block at a time from compact
 * counts, chosen from the input's shape against the host budget (`--max-memory`).
 *
 * Estimates are per nonzero of the input plus per cell and per gene, from what each route
 * allocates:
 * - whole: the counts Csr (8 B/nnz), its QC-filtered copy (8), log-normalized values (4), the
 *   HVG matrix (8 per HVG nonzero, taken as half of all), marker sort keys (~4) ≈ 28 B/nnz;
 * - blocks: compact counts (2–8 B/nnz), the HVG matrix as above, and one block of rows or genes
 *   widened at a time (16 B per block nonzero).
 * Per cell ~3 KB (PCA scores, kNN lists, graphs, layout, obs), per gene ~0.5 KB (moments,
 * marker statistics per group).
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

export interface MemoryPlan {
  route: "whole" | "blocks";
  /** Host budget in bytes (Infinity: none). */
  maxMemory: number;
  /** Estimated peak of the chosen route, bytes. */
  estimatedBytes: number;
  /** Most nonzeros widened at once in the blocks route. */
  blockNnz: number;
}

export interface PlanShape {
  nCells: number;
  nGenes: number;
  nnz: number;
  /** Bytes per nonzero of the compact counts (4 for uint16 indices and values). */
  compactBytesPerNnz: number;
}

const PER_CELL = 3000;
const PER_GENE = 512;
/** Share of the budget one widened block may use. */
const BLOCK_SHARE = 1 / 20;

export function wholeBytes(s: PlanShape): number {
  return s.nnz * 28 + s.nCells * PER_CELL + s.nGenes * PER_GENE;
}

export function planMemory(s: PlanShape, maxMemory = Infinity): MemoryPlan {
  const whole = wholeBytes(s);
  const blockNnz = Number.isFinite(maxMemory) ? Math.max(1024, Math.floor((maxMemory * BLOCK_SHARE) / 16)) : Infinity;
  if (whole <= maxMemory) return { route: "whole", maxMemory, estimatedBytes: whole, blockNnz };
  const blocks = s.nnz * (s.compactBytesPerNnz + 4) + Math.min(s.nnz, blockNnz) * 16 + s.nCells * PER_CELL + s.nGenes * PER_GENE;
  return { route: "blocks", maxMemory, estimatedBytes: blocks, blockNnz };
}

/** This machine's memory for the process: the cgroup limit when one is set, else physical memory. */
export function machineMemoryBytes(): number {
  let limit = totalmem();
  for (const f of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    try {
      const v = Number(readFileSync(f, "utf8").trim());
      if (Number.isFinite(v) && v > 0 && v < limit) limit = v;
    } catch {
      // no such cgroup file
    }
  }
  return limit;
}

/** Default host budget: 80 % of the machine's memory, leaving room for the OS and the runtime. */
export function defaultMaxMemory(): number {
  return Math.floor(machineMemoryBytes() * 0.8);
}

/** "12G", "512M", "4096K", "1.5GiB", a plain byte count → bytes; undefined when unreadable. */
export function parseBytes(v: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(v);
  if (!m) return undefined;
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as "" | "k" | "m" | "g" | "t"];
  const bytes = Math.floor(Number(m[1]) * scale);
  return bytes > 0 ? bytes : undefined;
}
