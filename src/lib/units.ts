/** Time units in milliseconds, shared by the pure core and the shells. */

export const HOUR_MS = 3_600_000;
