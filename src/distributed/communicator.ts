/**
 * The communicator: what ranks of a data-parallel job say to each other. Every ZeRO stage
 * (src/train/zeroRunner.ts) is written against this interface alone, so the same code runs over NCCL on GPUs
 * (./nccl.ts), over TCP between CPU processes (./tcp.ts) and between ranks of one process in
 * tests (./loopback.ts).
 *
 * Collectives follow NCCL's contract: every rank calls the same collectives in the same order
 * with tensors of the same size; the results are identical on every rank. Flat layouts:
 *   allReduce(t)      t's shape              the elementwise sum (or mean) over ranks
 *   reduceScatter(t)  [size / worldSize]     rank r's contiguous 1/N of the reduced t (size % N = 0)
 *   allGather(t)      [worldSize · size]     every rank's t, concatenated in rank order
 *   broadcast(t, r)   t's shape              rank r's t
 * Inputs are never consumed; the caller owns (and disposes) the result.
 */
import type { Tensor } from '../backend/tf.js';

export type ReduceOp = 'sum' | 'avg';

export interface Communicator {
  readonly rank: number;
  readonly worldSize: number;
  /** What carries the collectives: 'nccl', 'tcp', 'loopback'. */
  readonly kind: string;
  allReduce(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  reduceScatter(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  allGather(t: Tensor): Promise<Tensor>;
  broadcast(t: Tensor, root?: number): Promise<Tensor>;
  /**
   * allGather enqueued at once, for use inside a synchronous forward pass (ZeRO-3's just-in-time
   * layers). Only device communicators (NCCL) have it: host ones cannot wait for peers there.
   */
  allGatherNow?(t: Tensor): Tensor;
  /** Returns when every rank has called it. */
  barrier(): Promise<void>;
  /** Leave the group; a collective still waiting fails on the other ranks with an error naming this rank. */
  destroy(): void;
}

/** A collective that cannot complete: a peer died, timed out or disagreed. One line; the CLI prints it alone. */
export class CollectiveError extends Error {
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'CollectiveError';
  }
}

/** How long a collective waits for its peers before failing (overridable per group; TYPETUNE_DIST_TIMEOUT_S). */
export function defaultTimeoutMs(): number {
  const s = Number(process.env.TYPETUNE_DIST_TIMEOUT_S);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 600_000;
}

/** reduceScatter's precondition, checked the same way by every communicator. */
export function checkScatterable(size: number, worldSize: number, where: string): void {
  if (size % worldSize !== 0) {
    throw new CollectiveError(
      `${where}: reduceScatter needs a size divisible by the world size ${worldSize}, got ${size} (pad it: sharding.ts)`,
    );
  }
}

export function checkRank(rank: number, worldSize: number, what: string): void {
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new CollectiveError(`${what}: rank ${rank} is not one of 0…${worldSize - 1}`);
  }
}
