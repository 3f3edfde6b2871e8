import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { InputError } from "./errors.js";

/** Whole file as bytes; `.gz` is gunzipped. */
export function readBytes(path: string): Buffer {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new InputError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (path.endsWith(".gz")) {
    try {
      buf = gunzipSync(buf);
    } catch {
      throw new InputError(path, "not a valid gzip file (truncated or corrupt)");
    }
  }
  return buf;
}

/** Whole file as text; `.gz` is gunzipped. */
export function readText(path: string): string {
  return readBytes(path).toString("utf8");
}

/** Tab-separated lines (no header handling); a trailing empty line is dropped. */
export function readTsvRows(path: string): string[][] {
  const text = readText(path);
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => l.split("\t"));
}
