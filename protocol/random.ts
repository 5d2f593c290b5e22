/**
 * A small, fast, seedable random generator (mulberry32), for simulations and tests that
 * must repeat exactly. Not for anything secret. It has no imports, so that a simulator can
 * use it without loading the codec.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
