/**
 * The shells' clock. Pure code takes `now` as a parameter; shells call `nowMs(env)`, which is the
 * real time unless the declared override `GOALSTEP_NOW` is set (tests only).
 */
export function nowMs(env: { GOALSTEP_NOW?: string }): number {
  if (env.GOALSTEP_NOW) {
    const fixed = Date.parse(env.GOALSTEP_NOW);
    if (Number.isNaN(fixed))
      throw new Error(`GOALSTEP_NOW is not an ISO instant: ${env.GOALSTEP_NOW}`);
    return fixed;
  }
  return Date.now();
}
