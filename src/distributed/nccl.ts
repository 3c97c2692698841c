/**
 * The GPU communicator: NCCL through the device's collectives (src/backend/device.ts — distributed/
 * never reaches into the cuda backend), enqueued on the compute stream so a collective waits for
 * the kernels that made its input and no host synchronisation is needed. f32 and bf16 storage
 * travel as they are.
 *
 * NCCL itself waits forever for a dead peer. The rendezvous' TCP star stays open beside it: when
 * a peer's connection drops, the group is aborted (in-flight collectives return with an error)
 * and the next call fails naming that rank. A rank stuck in a device synchronisation cannot run
 * that handler; the launcher ends such a job after its grace period.
 */
import { tf, type Tensor } from '../backend/tf.js';
import type { DeviceCollectives } from '../backend/device.js';
import { checkRank, checkScatterable, CollectiveError, type Communicator, type ReduceOp } from './communicator.js';
import type { Star } from './rendezvous.js';

export class NcclCommunicator implements Communicator {
  readonly kind = 'nccl';
  readonly rank: number;
  readonly worldSize: number;
  private readonly comm: number;
  private failure: string | null = null;
  private closed = false;

  constructor(
    private readonly nccl: DeviceCollectives,
    private readonly star: Star,
  ) {
    this.rank = star.rank;
    this.worldSize = star.worldSize;
    this.comm = nccl.init(star.handout, star.rank, star.worldSize);
    for (const [peer, reader] of star.peers) {
      reader.socket.on('close', () => this.peerDied(peer === 0 && this.rank !== 0 ? 'rank 0' : `rank ${peer}`));
    }
  }

  private peerDied(who: string): void {
    if (this.closed || this.failure) return;
    this.failure = `${who} disconnected (its process ended or was killed); the NCCL group was aborted`;
    try {
      this.nccl.abort(this.comm);
    } catch {
      // Aborting is best effort: the failure is reported by the next collective either way.
    }
  }

  private check(what: string): void {
    if (this.closed) throw new CollectiveError(`rank ${this.rank}: ${what} after the communicator was destroyed`);
    if (this.failure) throw new CollectiveError(`rank ${this.rank}: ${what}: ${this.failure}`);
  }

  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    this.check('allReduce');
    return this.nccl.allReduce(this.comm, t, op, this.worldSize);
  }

  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    this.check('reduceScatter');
    checkScatterable(t.size, this.worldSize, `rank ${this.rank}`);
    return this.nccl.reduceScatter(this.comm, t, op, this.worldSize);
  }

  async allGather(t: Tensor): Promise<Tensor> {
    this.check('allGather');
    return this.nccl.allGather(this.comm, t, this.worldSize);
  }

  allGatherNow(t: Tensor): Tensor {
    this.check('allGather');
    return this.nccl.allGather(this.comm, t, this.worldSize);
  }

  async broadcast(t: Tensor, root = 0): Promise<Tensor> {
    this.check('broadcast');
    checkRank(root, this.worldSize, 'broadcast root');
    return this.nccl.broadcast(this.comm, t, root);
  }

  /** A one-element all-reduce read back: returns once every rank's work before it is done. */
  async barrier(): Promise<void> {
    this.check('barrier');
    const one = tf.ones([1]);
    const sum = this.nccl.allReduce(this.comm, one, 'sum', this.worldSize);
    await sum.data();
    one.dispose();
    sum.dispose();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.star.close();
    if (!this.failure) this.nccl.destroy(this.comm);
  }
}
