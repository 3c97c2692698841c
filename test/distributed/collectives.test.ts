/**
 * The host collectives over both transports that carry them — N ranks of one process
 * (loopback) and N TCP connections through the rendezvous — give the same, rank-ordered results;
 * a rank that disagrees, dies or never comes makes the others fail naming it.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import type { Communicator } from '../../src/distributed/communicator.js';
import { loopbackGroup } from '../../src/distributed/loopback.js';
import { rendezvous, rankEnv, type Star } from '../../src/distributed/rendezvous.js';
import { TcpCommunicator } from '../../src/distributed/tcp.js';
import { freePort } from './ranks.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const opened: Star[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

async function tcpGroup(n: number, timeoutMs = 10_000): Promise<Communicator[]> {
  const port = await freePort();
  const stars = await Promise.all(
    Array.from({ length: n }, (_, rank) =>
      rendezvous({ rank, worldSize: n, localRank: rank, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: port }, timeoutMs, () =>
        Uint8Array.from([7, 8, 9]),
      ),
    ),
  );
  opened.push(...stars);
  for (const s of stars) expect([...s.handout]).toEqual([7, 8, 9]);
  return stars.map((s) => new TcpCommunicator(s));
}

/** Rank r's input: r + 0.1·i (exact sums are easy to state). */
const input = (rank: number, n: number) => tf.tensor(Array.from({ length: n }, (_, i) => rank + 0.1 * i));
const values = (t: tf.Tensor) => [...(t.dataSync() as Float32Array)];

describe.each([
  ['loopback', async (n: number) => loopbackGroup(n, { timeoutMs: 5_000 })],
  ['tcp', async (n: number) => tcpGroup(n)],
])('%s collectives', (_kind, group) => {
  it.each([1, 2, 3])('%i ranks: allReduce, reduceScatter, allGather, broadcast, barrier', async (n) => {
    const comms = await group(n);
    const results = await Promise.all(
      comms.map(async (c) => {
        const x = input(c.rank, 6);
        const sum = await c.allReduce(x);
        const avg = await c.allReduce(x, 'avg');
        const scattered = await c.reduceScatter(tf.tensor(Array.from({ length: 3 * n }, (_, i) => i * (c.rank + 1))));
        const gathered = await c.allGather(tf.tensor([c.rank, -c.rank]));
        const fromLast = await c.broadcast(x, n - 1);
        await c.barrier();
        return { sum: values(sum), avg: values(avg), scattered: values(scattered), gathered: values(gathered), fromLast: values(fromLast) };
      }),
    );
    const ranks = Array.from({ length: n }, (_, r) => r);
    const rankSum = ranks.reduce((a, b) => a + b, 0);
    const weights = ranks.reduce((a, r) => a + r + 1, 0);
    results.forEach((res, r) => {
      res.sum.forEach((v, i) => expect(v).toBeCloseTo(rankSum + n * 0.1 * i, 5));
      res.avg.forEach((v, i) => expect(v).toBeCloseTo(rankSum / n + 0.1 * i, 5));
      expect(res.scattered).toEqual([0, 1, 2].map((j) => (3 * r + j) * weights));
      expect(res.gathered).toEqual(ranks.flatMap((q) => [q, -q]));
      res.fromLast.forEach((v, i) => expect(v).toBeCloseTo(n - 1 + 0.1 * i, 5));
      expect(res.sum).toEqual(results[0]!.sum); // the same bits everywhere
    });
    for (const c of comms) c.destroy();
  });

  it('ranks that call different collectives fail, naming what each called', async () => {
    const [a, b] = await group(2);
    const outcomes = await Promise.allSettled([a!.allReduce(tf.ones([2])), b!.allGather(tf.ones([2]))]);
    for (const o of outcomes) expect(o.status === 'rejected' && String(o.reason)).toMatch(/disagrees: rank \d calls (allReduce|allGather)/);
    a!.destroy();
    b!.destroy();
  });

  it('reduceScatter refuses a size the world does not divide', async () => {
    const [a, b] = await group(2);
    await expect(a!.reduceScatter(tf.ones([3]))).rejects.toThrow(/size divisible by the world size 2, got 3/);
    a!.destroy();
    b!.destroy();
  });
});

describe('dead or missing peers', () => {
  it('loopback: a rank that never arrives fails the others after the timeout, naming it', async () => {
    const [a] = loopbackGroup(3, { timeoutMs: 200 });
    await expect(a!.allReduce(tf.ones([1]))).rejects.toThrow(/allReduce\(sum, 1\): ranks 1, 2 did not arrive within 0.2 s/);
  });

  it('tcp: a rank whose process dies makes the next collective fail naming it', async () => {
    const [r0, r1, r2] = (await tcpGroup(3)) as TcpCommunicator[];
    await Promise.all([r0!, r1!, r2!].map((c) => c.barrier()));
    // What kill -9 does to its sockets: they close without a word.
    r2!.destroy();
    const started = Date.now();
    await expect(Promise.all([r0!.allReduce(tf.ones([1])), r1!.allReduce(tf.ones([1]))])).rejects.toThrow(/rank 2 disconnected/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('rendezvous: a rank that never joins fails rank 0 within the timeout, naming it; a joiner with no rank 0 gives up', async () => {
    const port = await freePort();
    const env = (rank: number) => ({ rank, worldSize: 3, localRank: rank, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: port });
    const host = rendezvous(env(0), 500);
    const one = rendezvous(env(1), 2_000);
    await expect(host).rejects.toThrow(/rank 2 did not join within 0.5 s/);
    await expect(one).rejects.toThrow(/rank 0 disconnected|did not answer/);
    await expect(rendezvous(env(2), 300)).rejects.toThrow(/rank 2: no rank 0 at 127\.0\.0\.1:\d+ within 0.3 s/);
  });

  it('rankEnv reads torchrun’s variables and refuses nonsense naming the variable', () => {
    expect(rankEnv({})).toBeNull();
    expect(rankEnv({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1234' })).toEqual({
      rank: 1,
      worldSize: 2,
      localRank: 1,
      nodeRank: 0,
      masterAddr: 'h',
      masterPort: 1234,
    });
    expect(() => rankEnv({ RANK: '2', WORLD_SIZE: '2' })).toThrow(/RANK=2 WORLD_SIZE=2: the rank must be below the world size/);
    expect(() => rankEnv({ RANK: 'x', WORLD_SIZE: '2' })).toThrow(/RANK=x: expected a non-negative integer/);
  });
});

describe('tcp framing', () => {
  it('carries a large tensor (many socket chunks) and small ones after it intact', async () => {
    const comms = await tcpGroup(2);
    const big = Float32Array.from({ length: 1 << 20 }, (_, i) => (i % 977) * 0.5);
    const results = await Promise.all(
      comms.map(async (c) => {
        const gathered = await c.allGather(tf.tensor(big));
        const small = await c.allReduce(tf.tensor([c.rank + 1]));
        return { gathered: gathered.dataSync() as Float32Array, small: values(small) };
      }),
    );
    for (const r of results) {
      expect(r.gathered.length).toBe(2 << 20);
      expect(r.gathered[(1 << 20) + 12345]).toBe(big[12345]);
      expect(r.gathered.subarray(1 << 20)).toEqual(big);
      expect(r.small).toEqual([3]);
    }
    for (const c of comms) c.destroy();
  });
});
