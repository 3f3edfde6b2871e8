/** Reads a user's grouping for rank_genes_groups: a TSV with a header, barcode first. */
import { InputError } from "../io/errors.js";
import { readTsvRows } from "../io/tsv.js";

export function readGroupsFile(path: string, column?: string): Map<string, string> {
  const rows = readTsvRows(path);
  if (rows.length < 2) throw new InputError(path, "expected a header line and at least one row (barcode<TAB>group)");
  const header = rows[0];
  const col = column === undefined ? 1 : header.indexOf(column);
  if (col < 0) throw new InputError(path, `no column '${column}' in the header (have: ${header.join(", ")})`);
  if (col >= header.length) throw new InputError(path, "line 1: expected at least two columns (barcode, group)");
  const out = new Map<string, string>();
  for (let i = 1; i < rows.length; i++) {
    const r = rows[i];
    if (r.length <= col || r[col] === "") throw new InputError(path, `line ${i + 1}: missing group value in column ${col + 1}`);
    if (out.has(r[0])) throw new InputError(path, `line ${i + 1}: duplicate barcode '${r[0]}'`);
    out.set(r[0], r[col]);
  }
  return out;
}
