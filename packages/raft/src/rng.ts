// The injected source of randomness. The core draws randomized election timeouts from it and
// nothing else; the simulator drives whole runs from one seed with it. `seededRandom` is a
// small, fast, well-mixed generator (sfc32 seeded through splitmix32), not a cryptographic one.

export interface RandomSource {
  /** A uniformly distributed integer in [0, bound); bound >= 1. */
  int(bound: number): number;
}

export interface SeededRandom extends RandomSource {
  /** A float in [0, 1). */
  float(): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** An independent generator derived from this one (for per-node streams). */
  fork(): SeededRandom;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function seededRandom(seed: number): SeededRandom {
  const init = splitmix32(seed);
  let a = init();
  let b = init();
  let c = init();
  let d = init() | 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  const float = () => next() / 4294967296;
  return {
    int: (bound) => Math.floor(float() * bound),
    float,
    chance: (p) => float() < p,
    fork: () => seededRandom(next()),
  };
}
