import type { CountMatrix } from "./counts.js";
import type { Csr } from "./csr.js";

/** A column of per-cell or per-feature annotations. */
export type Column =
  | { kind: "number"; values: Float64Array | Float32Array | Int32Array }
  | { kind: "bool"; values: Uint8Array }
  | { kind: "string"; values: string[] }
  | { kind: "category"; codes: Int32Array; categories: string[] };

export interface Table {
  /** Row names: barcodes for obs, unique feature symbols for var. */
  index: string[];
  columns: Map<string, Column>;
}

/**
 * Counts as read from disk: cells × features CSR plus obs/var tables.
 * var always has `gene_ids` and `feature_types` string columns.
 */
export interface CellMatrix {
  X: Csr;
  obs: Table;
  var: Table;
  /** Where it came from, for messages. */
  source: string;
  /**
   * Other feature types of a multimodal file (e.g. "Antibody Capture"), each as its own
   * cells × features matrix over the same cells; X then holds only "Gene Expression".
   */
  altExperiments?: Map<string, CellMatrix>;
  /** What the reader chose on the user's behalf (e.g. "counts taken from layers/counts"). */
  note?: string;
}

/** The same, with the counts held compactly (see counts.ts) for inputs too large for a Csr. */
export interface CountCellMatrix extends Omit<CellMatrix, "X" | "altExperiments"> {
  X: CountMatrix;
  altExperiments?: Map<string, CountCellMatrix>;
}

export function emptyTable(index: string[]): Table {
  return { index, columns: new Map() };
}

export function subsetTable(t: Table, keep: ArrayLike<number | boolean>): Table {
  const idx: number[] = [];
  for (let i = 0; i < t.index.length; i++) if (keep[i]) idx.push(i);
  const columns = new Map<string, Column>();
  for (const [name, col] of t.columns) {
    switch (col.kind) {
      case "number": {
        const Ctor = col.values.constructor as { new (n: number): Float64Array | Float32Array | Int32Array };
        const v = new Ctor(idx.length);
        idx.forEach((i, j) => (v[j] = col.values[i]));
        columns.set(name, { kind: "number", values: v });
        break;
      }
      case "bool":
        columns.set(name, { kind: "bool", values: Uint8Array.from(idx, (i) => col.values[i]) });
        break;
      case "string":
        columns.set(name, { kind: "string", values: idx.map((i) => col.values[i]) });
        break;
      case "category":
        columns.set(name, { kind: "category", codes: Int32Array.from(idx, (i) => col.codes[i]), categories: col.categories });
        break;
    }
  }
  return { index: idx.map((i) => t.index[i]), columns };
}

/** anndata's var_names_make_unique: the second "X" becomes "X-1", the third "X-2", … */
export function makeUnique(names: string[]): string[] {
  const seen = new Set(names);
  const count = new Map<string, number>();
  const out = names.slice();
  const firstSeen = new Set<string>();
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (!firstSeen.has(n)) {
      firstSeen.add(n);
      continue;
    }
    let k = count.get(n) ?? 0;
    let candidate: string;
    do {
      k++;
      candidate = `${n}-${k}`;
    } while (seen.has(candidate));
    count.set(n, k);
    seen.add(candidate);
    out[i] = candidate;
  }
  return out;
}
