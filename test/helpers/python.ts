/** A python3 that imports anndata and h5py (Debian's python3-anndata), found by scripts/setup-anndata.sh. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "./reference.js";

let pythonPath: string | undefined;

/** Its path; throws (so the test fails, never skips) naming the package when there is none. */
export function python(): string {
  if (pythonPath) return pythonPath;
  const r = spawnSync("bash", [join(repoRoot, "scripts/setup-anndata.sh")], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`these tests need Debian's python3-anndata (with python3-h5py); scripts/setup-anndata.sh said:\n${r.stderr}`);
  }
  pythonPath = r.stdout.trim().split("\n").pop()!;
  return pythonPath;
}
