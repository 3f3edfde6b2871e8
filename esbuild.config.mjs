// Bundles the CLI and the bench runner. webgpu (dawn.node), h5wasm and apache-arrow stay external:
// dawn.node is found relative to its package, and h5wasm loads its own wasm.
import { build } from "esbuild";
import { existsSync } from "node:fs";

const entries = { cli: "src/cli/main.ts" };
if (existsSync("bench/main.ts")) entries.bench = "bench/main.ts";

await build({
  entryPoints: entries,
  outdir: "dist",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  external: ["webgpu", "h5wasm", "apache-arrow", "commander"],
  loader: { ".wgsl": "text" },
  banner: { js: "#!/usr/bin/env node" },
  logLevel: "warning",
});
