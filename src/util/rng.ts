/** A small seeded PRNG (mulberry32): reproducible sampling across runs and machines. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`Rng.int(${n}): needs an integer n ≥ 1 (there is nothing to pick from)`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(this.next() + 1e-12)) * Math.cos(2 * Math.PI * this.next());
  }

  /** `n` distinct items of `xs` (all of them when n ≥ length), in their original order. */
  sample<T>(xs: readonly T[], n: number): T[] {
    if (n >= xs.length) return [...xs];
    const idx = xs.map((_, i) => i);
    for (let i = 0; i < n; i++) {
      const j = i + this.int(idx.length - i);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    return idx.slice(0, n).sort((a, b) => a - b).map((i) => xs[i]!);
  }

  /** The state, to save and restore (checkpoints). */
  get seedState(): number {
    return this.state;
  }
}
