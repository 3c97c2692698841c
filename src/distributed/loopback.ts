/**
 * N ranks in one process (tests, CI): each rank is an async task holding its own communicator of
 * one group; a collective resolves when every rank has handed in its part. A rank that calls a
 * different collective than its peers, leaves the group, or never arrives makes the others fail
 * with an error naming it, instead of hanging.
 *
 *   const [c0, c1] = loopbackGroup(2);
 *   await Promise.all([run(c0), run(c1)]);
 */
import { CollectiveError, defaultTimeoutMs } from './communicator.js';
import { HostCommunicator } from './host.js';

interface Round {
  op: string;
  parts: (Float32Array | undefined)[];
  waiting: Array<{ resolve(parts: Float32Array[]): void; reject(err: Error): void; timer: NodeJS.Timeout }>;
}

/** The state the ranks of one group share: rounds in flight by sequence number, ranks that left. */
class Group {
  readonly rounds = new Map<number, Round>();
  readonly left = new Set<number>();

  constructor(
    readonly worldSize: number,
    readonly timeoutMs: number,
  ) {}

  fail(err: Error): void {
    for (const round of this.rounds.values()) {
      for (const w of round.waiting) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    }
    this.rounds.clear();
  }
}

export class LoopbackCommunicator extends HostCommunicator {
  readonly kind = 'loopback';
  private seq = 0;

  constructor(
    private readonly group: Group,
    rank: number,
  ) {
    super(rank, group.worldSize);
  }

  protected exchange(op: string, data: Float32Array): Promise<Float32Array[]> {
    const g = this.group;
    if (g.left.size > 0) return Promise.reject(new CollectiveError(`rank ${this.rank}: ${op}: rank ${[...g.left][0]} left the group`));
    const seq = this.seq++;
    let round = g.rounds.get(seq);
    if (!round) g.rounds.set(seq, (round = { op, parts: new Array(g.worldSize).fill(undefined), waiting: [] }));
    if (round.op !== op) {
      const err = new CollectiveError(`collective #${seq} disagrees: rank ${this.rank} calls ${op}, another rank ${round.op}`);
      g.fail(err);
      return Promise.reject(err);
    }
    round.parts[this.rank] = Float32Array.from(data);
    return new Promise<Float32Array[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = round.parts.flatMap((p, r) => (p ? [] : [r]));
        g.fail(
          new CollectiveError(
            `${op}: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not arrive within ${g.timeoutMs / 1000} s`,
          ),
        );
      }, g.timeoutMs);
      round.waiting.push({ resolve, reject, timer });
      if (round.parts.every((p) => p !== undefined)) {
        g.rounds.delete(seq);
        for (const w of round.waiting) {
          clearTimeout(w.timer);
          w.resolve(round.parts as Float32Array[]);
        }
      }
    });
  }

  destroy(): void {
    if (this.group.left.has(this.rank)) return;
    this.group.left.add(this.rank);
    this.group.fail(new CollectiveError(`rank ${this.rank} left the group while a collective waited for it`));
  }
}

/** The communicators of an N-rank group living in this process, one per rank. */
export function loopbackGroup(worldSize: number, opts: { timeoutMs?: number } = {}): LoopbackCommunicator[] {
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new CollectiveError(`loopback group: world size must be a positive integer, got ${worldSize}`);
  const group = new Group(worldSize, opts.timeoutMs ?? defaultTimeoutMs());
  return Array.from({ length: worldSize }, (_, r) => new LoopbackCommunicator(group, r));
}
