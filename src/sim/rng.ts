/**
 * Random draws for the simulator: sfc32 (Chris Doty-Humphrey's small fast counter generator,
 * 32-bit integer arithmetic only, so a seed gives the same stream on every platform), plus the
 * normal, gamma and Poisson draws negative-binomial counts need.
 */

export class SimRng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;
  private spare = NaN;

  constructor(seed: number, stream = 0) {
    this.a = seed >>> 0;
    this.b = stream >>> 0;
    this.c = 0x9e3779b9;
    for (let i = 0; i < 16; i++) this.u32(); // warm up: sfc32's first outputs follow the seed closely
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.u32() / 4294967296;
  }

  /** Exponential(1): −ln(1 − U), finite since 1 − U ≥ 2^−32. */
  exponential(): number {
    return -Math.log(1 - this.uniform());
  }

  /** Standard normal (Box–Muller, the second value kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** Gamma(shape, scale 1): Marsaglia & Tsang (2000); shape < 1 boosted by U^(1/shape). */
  gamma(shape: number): number {
    if (shape < 1) {
      let u = 0;
      while (u === 0) u = this.uniform();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * Poisson(lambda). Small means by inversion with a shortcut for the common zero (u < 1 − λ
   * implies u < e^−λ, so no exp is needed); λ ≥ 30 by Hörmann's PTRS transformed rejection.
   */
  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    if (lambda < 30) {
      let u = this.uniform();
      if (u < 1 - lambda) return 0;
      let p = Math.exp(-lambda);
      let k = 0;
      while (u >= p && k < 1000) {
        u -= p;
        k++;
        p *= lambda / k;
      }
      return k;
    }
    const slam = Math.sqrt(lambda);
    const loglam = Math.log(lambda);
    const b = 0.931 + 2.53 * slam;
    const a = -0.059 + 0.02483 * b;
    const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
    const vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
      const U = this.uniform() - 0.5;
      const V = this.uniform();
      const us = 0.5 - Math.abs(U);
      const k = Math.floor(((2 * a) / us + b) * U + lambda + 0.43);
      if (us >= 0.07 && V <= vr) return k;
      if (k < 0 || (us < 0.013 && V > us)) continue;
      if (Math.log(V) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - lnFactorial(k)) return k;
    }
  }
}

/** ln(k!) by Stirling's series (exact table below 16). */
const LN_FACT = (() => {
  const t = new Float64Array(16);
  for (let i = 1; i < 16; i++) t[i] = t[i - 1] + Math.log(i);
  return t;
})();
function lnFactorial(k: number): number {
  if (k < 16) return LN_FACT[k];
  const x = k + 1;
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * x) - 1 / (360 * x * x * x);
}

/**
 * murmur3's 32-bit finaliser of (word, i): a counter-based hash, so a cell's random word gives
 * each gene its own well-mixed 32 bits without one generator call per gene.
 */
export function hash32(word: number, i: number): number {
  let h = (word + Math.imul(i, 0x9e3779b1)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
