/**
 * Collectives computed on the host from one primitive, `exchange`: every rank hands in a
 * Float32Array and gets back every rank's, in rank order. Reductions then run locally on every
 * rank in the same order (rank 0 + rank 1 + …, each addition rounded to f32), so every rank gets
 * the same bits and a 1-rank group gives the input back unchanged. Moving N copies is wasteful
 * next to NCCL's ring, and fine for what this serves: CPU ranks (tests, `--gpus N` with the cpu
 * backend). float32 tensors only (tfjs' cpu backend stores nothing else).
 */
import { tf, type Tensor } from '../backend/tf.js';
import { checkRank, checkScatterable, CollectiveError, type Communicator, type ReduceOp } from './communicator.js';

/** The one thing a host transport must do; `op` names the collective so peers that disagree fail loudly. */
export type Exchange = (op: string, data: Float32Array) => Promise<Float32Array[]>;

export abstract class HostCommunicator implements Communicator {
  abstract readonly kind: string;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
  ) {
    checkRank(rank, worldSize, 'communicator');
  }

  protected abstract exchange(op: string, data: Float32Array): Promise<Float32Array[]>;
  abstract destroy(): void;

  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    const parts = await this.exchange(`allReduce(${op}, ${t.size})`, hostData(t, 'allReduce'));
    return tf.tensor(reduce(parts, op, this.worldSize), t.shape, 'float32');
  }

  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    checkScatterable(t.size, this.worldSize, `rank ${this.rank}`);
    const parts = await this.exchange(`reduceScatter(${op}, ${t.size})`, hostData(t, 'reduceScatter'));
    const n = t.size / this.worldSize;
    const mine = parts.map((p) => p.subarray(this.rank * n, (this.rank + 1) * n));
    return tf.tensor(reduce(mine, op, this.worldSize), [n], 'float32');
  }

  async allGather(t: Tensor): Promise<Tensor> {
    const parts = await this.exchange(`allGather(${t.size})`, hostData(t, 'allGather'));
    const out = new Float32Array(t.size * this.worldSize);
    parts.forEach((p, r) => out.set(p, r * t.size));
    return tf.tensor(out, [out.length], 'float32');
  }

  async broadcast(t: Tensor, root = 0): Promise<Tensor> {
    checkRank(root, this.worldSize, 'broadcast root');
    const parts = await this.exchange(`broadcast(${root}, ${t.size})`, hostData(t, 'broadcast'));
    return tf.tensor(parts[root]!, t.shape, 'float32');
  }

  async barrier(): Promise<void> {
    await this.exchange('barrier', new Float32Array(0));
  }
}

function hostData(t: Tensor, what: string): Float32Array {
  if (t.dtype !== 'float32') throw new CollectiveError(`${what}: host communicators carry float32 tensors, got ${t.dtype}`);
  return t.dataSync() as Float32Array;
}

/** Σ over ranks in rank order, each addition rounded to f32 (a Float32Array store rounds); avg divides at the end. */
function reduce(parts: Float32Array[], op: ReduceOp, worldSize: number): Float32Array {
  const out = Float32Array.from(parts[0]!);
  for (let r = 1; r < parts.length; r++) {
    const p = parts[r]!;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + p[i]!;
  }
  if (op === 'avg') for (let i = 0; i < out.length; i++) out[i] = out[i]! / worldSize;
  return out;
}
