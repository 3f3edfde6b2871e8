/**
 * Per-cell table as an Arrow IPC file (Feather V2, magic "ARROW1"): a `barcode` Utf8 column
 * first, then one column per entry — typed arrays as Float32/Float64/Int32, strings as Utf8,
 * or dictionary-encoded (Int32 keys) when `categorical`. pandas/pyarrow/polars/R arrow read it.
 * Note: apache-arrow's file writer puts the schema only in the footer (readers that use the
 * footer, i.e. all of the above, are fine). Written to a temp file and renamed on success.
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Dictionary, Int32, Table, Utf8, makeVector, tableToIPC, vectorFromArray } from "apache-arrow";
import type { Vector } from "apache-arrow";

export interface CellsTable {
  barcodes: string[];
  columns: { name: string; values: Float32Array | Float64Array | Int32Array | string[]; categorical?: boolean }[];
}

export function cellsToArrowIpc(table: CellsTable): Uint8Array {
  const n = table.barcodes.length;
  const vectors: Record<string, Vector> = { barcode: vectorFromArray(table.barcodes, new Utf8()) };
  for (const c of table.columns) {
    if (c.name in vectors) throw new Error(`Arrow column '${c.name}' given twice (or clashes with 'barcode')`);
    if (c.values.length !== n) throw new Error(`Arrow column '${c.name}' has ${c.values.length} values, expected ${n}`);
    vectors[c.name] = Array.isArray(c.values)
      ? vectorFromArray(c.values, c.categorical ? new Dictionary(new Utf8(), new Int32()) : new Utf8())
      : makeVector(c.values);
  }
  return tableToIPC(new Table(vectors), "file");
}

export function writeCellsArrow(path: string, table: CellsTable): void {
  const bytes = cellsToArrowIpc(table);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
