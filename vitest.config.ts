import { defineConfig } from "vitest/config";

// .wgsl files are imported as strings, the same way esbuild's "text" loader bundles them.
const wgslAsText = {
  name: "wgsl-as-text",
  transform(code: string, id: string) {
    if (id.endsWith(".wgsl")) return { code: `export default ${JSON.stringify(code)};`, map: null };
    return undefined;
  },
};

export default defineConfig({
  plugins: [wgslAsText],
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: "forks",
    fileParallelism: false,
  },
});
