/** The range check every Philox stream shares, on the host (src/adapters/philox.ts) and before a device launch (src/backend/cuda/). */
/**
 * The counters offset … offset + n − 1 must be safe integers: the device adds them in exact
 * 64-bit arithmetic, the host in doubles, and past 2⁵³ the two would draw different values.
 * (Below that the counter's two 32-bit words carry indices past 2³² exactly on both sides.)
 */
export function checkCounters(offset: number, n: number): void {
  // Compared by subtraction: offset + n − 1 itself may round back below the limit.
  if (n > 0 && offset > Number.MAX_SAFE_INTEGER - (n - 1)) {
    throw new Error(
      `Philox counters ${offset} + ${n} values pass 2^53 − 1, where the host's doubles would lose the device's exact counter`,
    );
  }
}
