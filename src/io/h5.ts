/**
 * 10x Genomics Cell Ranger HDF5 reader (filtered_feature_bc_matrix.h5).
 * v3+: /matrix/{data, indices, indptr, shape, barcodes}, /matrix/features/{id, name, feature_type}.
 * v2: /<genome>/{data, indices, indptr, shape, barcodes, genes, gene_names} (one genome only).
 * The matrix is stored features × cells in CSC, which is exactly cells × features CSR.
 * Produces the same CellMatrix as readTenxMtxDir on the same data (var index = unique names,
 * gene_ids and feature_types columns). Counts are validated as non-negative integers.
 */
import type { CellMatrix } from "../core/cellMatrix.js";
import { makeUnique } from "../core/cellMatrix.js";
import { Group } from "h5wasm/node";
import { InputError } from "./errors.js";
import { countsChecker, h5get, needDataset, openH5, readCompressed, readNumbers, readStrings } from "./h5util.js";

export async function readTenxH5(path: string): Promise<CellMatrix> {
  const f = await openH5(path);
  try {
    let g = h5get(path, f, "matrix");
    let v3 = true;
    if (!(g instanceof Group)) {
      v3 = false;
      const genomes = f.keys().filter((k) => {
        const o = h5get(path, f, k);
        return o instanceof Group && h5get(path, o, "genes") !== undefined;
      });
      if (genomes.length === 0) {
        throw new InputError(path, "not a 10x Cell Ranger .h5: no '/matrix' group (v3) and no '/<genome>/genes' group (v2)");
      }
      if (genomes.length > 1) {
        throw new InputError(path, `10x v2 .h5 with several genomes (${genomes.join(", ")}) is not supported; expected one`);
      }
      g = h5get(path, f, genomes[0]) as Group;
    }
    const grp = g as Group;
    const shapeDs = needDataset(path, grp, "shape", "[features, cells]");
    const shape = Array.from(readNumbers(path, shapeDs, Float64Array));
    if (shape.length !== 2) throw new InputError(path, `dataset '${shapeDs.path}' should hold [features, cells], found ${shape.length} value(s)`);
    const [nFeatures, nCells] = shape;
    const barcodes = readStrings(path, needDataset(path, grp, "barcodes", "cell barcodes"));
    let ids: string[], names: string[], types: string[];
    if (v3) {
      const fg = h5get(path, grp, "features");
      if (!(fg instanceof Group)) throw new InputError(path, "missing group '/matrix/features'");
      ids = readStrings(path, needDataset(path, fg, "id", "feature ids"));
      names = readStrings(path, needDataset(path, fg, "name", "feature names"));
      const ft = h5get(path, fg, "feature_type");
      types = ft && !(ft instanceof Group) ? readStrings(path, ft) : ids.map(() => "Gene Expression");
    } else {
      ids = readStrings(path, needDataset(path, grp, "genes", "gene ids"));
      const gn = h5get(path, grp, "gene_names");
      names = gn && !(gn instanceof Group) ? readStrings(path, gn) : ids;
      types = ids.map(() => "Gene Expression");
    }
    const where = grp.path;
    if (barcodes.length !== nCells) {
      throw new InputError(path, `'${where}/barcodes' has ${barcodes.length} entries but '${where}/shape' says ${nCells} cells`);
    }
    for (const [label, arr] of [["ids", ids], ["names", names], ["feature types", types]] as const) {
      if (arr.length !== nFeatures) {
        throw new InputError(path, `feature ${label} have ${arr.length} entries but '${where}/shape' says ${nFeatures} features`);
      }
    }
    const seen = new Map<string, number>();
    barcodes.forEach((b, i) => {
      const prev = seen.get(b);
      if (prev !== undefined) throw new InputError(path, `'${where}/barcodes' entry ${i}: duplicate barcode '${b}' (first at entry ${prev})`);
      seen.set(b, i);
    });
    const X = readCompressed(path, grp, nCells, nFeatures, countsChecker(path, `${where}/data`));
    return {
      X,
      obs: { index: barcodes, columns: new Map() },
      var: {
        index: makeUnique(names),
        columns: new Map([
          ["gene_ids", { kind: "string", values: ids }],
          ["feature_types", { kind: "string", values: types }],
        ]),
      },
      source: path,
    };
  } finally {
    f.close();
  }
}
