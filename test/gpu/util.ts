/** Shared helpers for the GPU tests: the adapter (failing loudly when absent) and random CSR inputs. */
import type { Csr } from "../../src/core/csr.js";
import { mulberry32 } from "../../src/core/random.js";
import { acquireGpu, type AcquireOptions, type Gpu } from "../../src/gpu/device.js";

/** Seeded uniform [0, 1) generator for random test inputs. */
export const rng = mulberry32;

let printed = false;

/** The real adapter; no adapter is a failure whose message names the packages to install. */
export async function testGpu(opts?: AcquireOptions): Promise<Gpu> {
  const gpu = await acquireGpu(opts);
  if (!printed) {
    printed = true;
    console.log(`WebGPU adapter: ${JSON.stringify(gpu.info)} maxStorageBufferBindingSize=${gpu.limits.maxStorageBufferBindingSize}`);
  }
  return gpu;
}

export interface RandomCsrOptions {
  density?: number;
  /** Fraction of rows left empty. */
  emptyRows?: number;
  /** Fraction of columns never expressed. */
  deadCols?: number;
  /** Integer counts (default) or positive reals spanning several decades. */
  real?: boolean;
}

/** Random count-like CSR: per-column expression rates vary, counts are skewed (geometric). */
export function randomCsr(nRows: number, nCols: number, seed: number, o: RandomCsrOptions = {}): Csr {
  const r = rng(seed);
  const density = o.density ?? 0.1;
  const colRate = Float64Array.from({ length: nCols }, () => (r() < (o.deadCols ?? 0.05) ? 0 : Math.min(1, density * 3 * r() ** 2)));
  const colMean = Float64Array.from({ length: nCols }, () => 0.5 + 20 * r() ** 3);
  const indptr = new Float64Array(nRows + 1);
  const idx: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < nRows; i++) {
    if (r() >= (o.emptyRows ?? 0.05)) {
      const depth = 0.3 + 1.7 * r();
      for (let j = 0; j < nCols; j++) {
        if (r() < colRate[j] * depth) {
          idx.push(j);
          val.push(o.real ? Math.fround(colMean[j] * depth * (0.01 + r() * 3)) : 1 + Math.floor(-Math.log(1 - r()) * colMean[j] * depth));
        }
      }
    }
    indptr[i + 1] = idx.length;
  }
  return { nRows, nCols, indptr, indices: Uint32Array.from(idx), data: Float32Array.from(val) };
}

/** Largest |a − b| / max(|b|, floor) over all elements. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-30): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    if (Number.isNaN(e)) return Infinity;
    if (e > worst) worst = e;
  }
  return worst;
}

export function bytesEqual(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
