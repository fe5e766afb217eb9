/** Types of scripts/lib/random.mjs for the TypeScript files that import it. */
/** mulberry32: a deterministic PRNG of floats in [0, 1) for a seed. */
export declare function seededRandom(seed: number): () => number;
