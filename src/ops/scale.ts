/**
 * Per-feature centring/scaling parameters, as scanpy's pp.scale computes them: mean and standard
 * deviation (ddof 1) over all cells, zeros included, float64 sums; a feature with std 0 gets
 * std 1 (scanpy's `std[std == 0] = 1`), so it scales to zeros instead of NaN. The scaled matrix
 * itself is never formed: gram.ts / pca.ts apply (x − mean)/std and the clip implicitly.
 */
import type { Csr } from "../core/csr.js";
import { featureMomentsCpu } from "./normalize.js";

export function scaleParamsCpu(X: Csr): { mean: Float64Array; std: Float64Array } {
  const { mean, variance } = featureMomentsCpu(X);
  const std = new Float64Array(X.nCols);
  for (let j = 0; j < X.nCols; j++) {
    const s = Math.sqrt(variance[j]);
    std[j] = s === 0 ? 1 : s;
  }
  return { mean, std };
}
