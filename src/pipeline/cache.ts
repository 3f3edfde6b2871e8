/**
 * Step memoization. Each step's result is stored under a key that hashes the input's content,
 * the parameters that step depends on and the keys of the steps it reads from, so changing a
 * late parameter (e.g. the clustering resolution) re-runs only the steps downstream of it.
 * Values are stored as V8-serialized bytes (typed arrays, Maps and plain objects round-trip),
 * which also keeps a cached value safe from later mutation by the pipeline.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import type { CellMatrix, CountCellMatrix } from "../core/cellMatrix.js";

export interface StepCache {
  get(key: string): Promise<unknown | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

/** In-process cache (the API's default when memoization is wanted without a directory). */
export class MemoryStepCache implements StepCache {
  private readonly entries = new Map<string, Buffer>();
  async get(key: string): Promise<unknown | undefined> {
    const b = this.entries.get(key);
    return b === undefined ? undefined : deserialize(b);
  }
  async set(key: string, value: unknown): Promise<void> {
    this.entries.set(key, serialize(value));
  }
  get size(): number {
    return this.entries.size;
  }
}

/** A directory of `<key>.v8` files, shared across CLI invocations (`--cache <dir>`). */
export class DirStepCache implements StepCache {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }
  async get(key: string): Promise<unknown | undefined> {
    const path = join(this.dir, `${key}.v8`);
    if (!existsSync(path)) return undefined;
    try {
      return deserialize(readFileSync(path));
    } catch {
      return undefined; // a damaged entry is a miss, recomputed and overwritten
    }
  }
  async set(key: string, value: unknown): Promise<void> {
    const path = join(this.dir, `${key}.v8`);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, serialize(value));
    renameSync(tmp, path);
  }
}

/** sha256 of a matrix's content: shape, CSR arrays, barcodes and feature names. */
export function contentHash(m: CellMatrix | CountCellMatrix): string {
  const h = createHash("sha256");
  const X = m.X;
  // The storage form is part of the key (compact counts hash their own bytes).
  h.update(`${X.nRows}x${X.nCols} ${X.indices.constructor.name} ${X.data.constructor.name}\n`);
  for (const a of [X.indptr, X.indices, X.data]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  h.update(m.obs.index.join("\n"));
  h.update("\u0000");
  h.update(m.var.index.join("\n"));
  return h.digest("hex");
}

/** Key of a step: hash of its name, its parameters and the keys it depends on. */
export function stepKey(name: string, params: unknown, deps: string[]): string {
  return createHash("sha256")
    .update(JSON.stringify({ name, params, deps }))
    .digest("hex")
    .slice(0, 32);
}
