/**
 * The CLI as a user runs it: `node dist/cli.js analyze …` (built by the test command). Checks the
 * output directory, that Debian's anndata reads analysis.h5ad, and that every bad input in
 * test/fixtures/bad gives one clear line, a non-zero exit and no output directory.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tableFromIPC } from "apache-arrow";
import { beforeAll, describe, expect, it } from "vitest";
import { python } from "./helpers/python.js";
import { repoRoot } from "./helpers/reference.js";

const cli = join(repoRoot, "dist/cli.js");
const run = (args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { cwd: repoRoot, encoding: "utf8", timeout: 240_000 });

describe("cellgpu analyze on the embedded pbmc3k", () => {
  const out = join(mkdtempSync(join(tmpdir(), "cellgpu-cli-")), "pbmc3k");
  let res: ReturnType<typeof run>;
  beforeAll(() => {
    expect(existsSync(cli), "dist/cli.js missing: run `npm run build` (the test command does)").toBe(true);
    res = run(["analyze", "datasets/pbmc3k", "--out", out, "--max-genes", "2500", "--max-pct-mt", "5", "--backend", "cpu"]);
  });

  it("exits 0 and prints a per-step timing table", () => {
    expect(res.status, res.stderr).toBe(0);
    for (const s of ["qc", "normalize", "hvg", "pca", "neighbors_knn", "leiden", "umap", "rank_genes_groups", "total"]) {
      expect(res.stdout).toMatch(new RegExp(`\\| ${s} +\\|`));
    }
  });

  it("writes summary.json with steps, backends, counts and parameters", () => {
    const s = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    expect(s.cells_kept).toBe(2638);
    expect(s.genes_kept).toBe(13714);
    expect(s.clusters).toBeGreaterThan(3);
    expect(s.parameters.nNeighbors).toBe(15);
    expect(s.steps.every((x: { backend: string; ms: number }) => x.backend === "cpu" && x.ms >= 0)).toBe(true);
  });

  it("writes cells.arrow that apache-arrow reads back", () => {
    const t = tableFromIPC(readFileSync(join(out, "cells.arrow")));
    expect(t.numRows).toBe(2638);
    for (const c of ["barcode", "total_counts", "cluster", "UMAP_1", "PC_50"]) expect(t.schema.fields.map((f) => f.name)).toContain(c);
  });

  it("writes analysis.h5ad that Debian's anndata reads, with the right shapes and values", () => {
    const py = `
import anndata, numpy as np, json, sys
a = anndata.read_h5ad(sys.argv[1])
s = json.load(open(sys.argv[2]))
assert a.shape == (2638, 13714), a.shape
assert a.obsm['X_pca'].shape == (2638, 50)
assert a.obsm['X_umap'].shape == (2638, 2)
assert a.varm['PCs'].shape == (13714, 50)
c = a.obsp['connectivities']
assert c.shape == (2638, 2638) and abs(c - c.T).max() < 1e-6
assert a.obsp['distances'].shape == (2638, 2638)
assert str(a.obs['leiden'].dtype) == 'category'
assert a.obs['leiden'].nunique() == s['clusters']
assert a.layers['counts'].sum() == a.obs['total_counts'].sum()
assert int(a.var['highly_variable'].sum()) == 2000
assert a.obs_names[0] == 'AAACATACAACCAC-1'
assert len(a.uns['pca']['variance_ratio']) == 50
assert 'rank_genes_groups' in a.uns and 'names' in a.uns['rank_genes_groups']
x = a.X[:5].toarray(); assert np.all(x >= 0) and x.max() < 20
print('ok')
`;
    const r = spawnSync(python(), ["-c", py, join(out, "analysis.h5ad"), join(out, "summary.json")], { encoding: "utf8" });
    expect(r.status, `python3 + anndata failed (install Debian's python3-anndata: apt-get install python3-anndata):\n${r.stderr}`).toBe(0);
    expect(r.stdout.trim()).toBe("ok");
  });
});

describe("cellgpu analyze --groups", () => {
  it("ranks genes for the user's grouping (the Seurat tutorial's cell types)", () => {
    const out = join(mkdtempSync(join(tmpdir(), "cellgpu-groups-")), "o");
    const r = run([
      "analyze", "datasets/pbmc3k", "--out", out, "--max-genes", "2500", "--max-pct-mt", "5", "--backend", "cpu",
      "--groups", "datasets/pbmc3k/labels_seurat_tutorial.tsv", "--groups-column", "cell_type",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const py = `
import anndata, sys
a = anndata.read_h5ad(sys.argv[1])
r = a.uns['rank_genes_groups']
assert r['params']['groupby'] == 'groups', r['params']
names = sorted(r['names'].dtype.names)
assert names == sorted(a.obs['groups'].cat.categories), names
top = list(r['names']['CD14+ Mono'][:25])
assert 'LYZ' in top or 'S100A9' in top or 'S100A8' in top, top
top = list(r['names']['B'][:25])
assert 'MS4A1' in top or 'CD79A' in top, top
print('ok', len(names))
`;
    const p = spawnSync(python(), ["-c", py, join(out, "analysis.h5ad")], { encoding: "utf8" });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout.trim()).toBe("ok 9");
  });
});

describe("bad input: one line naming the file and problem, non-zero exit, no output", () => {
  const casesPath = join(repoRoot, "test/fixtures/bad/cases.json");
  const cases: { name: string; input: string; expect: string; flag?: string }[] = existsSync(casesPath)
    ? JSON.parse(readFileSync(casesPath, "utf8"))
    : [];
  it("has a corpus of bad inputs", () => expect(cases.length).toBeGreaterThanOrEqual(14));
  for (const c of cases) {
    it(c.name, () => {
      const parent = mkdtempSync(join(tmpdir(), "cellgpu-bad-"));
      const out = join(parent, "out");
      const r = run(["analyze", c.input, "--out", out, "--backend", "cpu"]);
      expect(r.status).not.toBe(0);
      expect(r.status).not.toBeNull();
      const lines = r.stderr.trim().split("\n");
      expect(lines.length, r.stderr).toBe(1);
      expect(lines[0]).toMatch(/^cellgpu: error: /);
      expect(lines[0]).toContain(c.expect);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(parent)).toEqual([]);
    });
  }
});
