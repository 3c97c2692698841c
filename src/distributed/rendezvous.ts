/**
 * How the ranks of a job find each other, torchrun-style: rank 0 listens on
 * MASTER_ADDR:MASTER_PORT; every other rank connects (retrying while rank 0 starts), says its
 * rank, and gets back what rank 0 hands out — the NCCL unique id when the job runs on GPUs. The
 * connections stay open as a star around rank 0: the TCP communicator (./tcp.ts) carries CPU
 * ranks' collectives over them, and on GPUs they tell a rank at once that a peer died.
 * Every wait has a timeout, and every failure names the rank it concerns.
 */
import net from 'node:net';
import { CollectiveError } from './communicator.js';
import { FrameReader, sendFrame } from './wire.js';

/** The environment a rank is started with (torchrun's names). */
export interface RankEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
}

/** This process's place in a job from RANK, WORLD_SIZE, …; null when it is not one (no RANK/WORLD_SIZE). */
export function rankEnv(env: NodeJS.ProcessEnv = process.env): RankEnv | null {
  if (env.RANK === undefined && env.WORLD_SIZE === undefined) return null;
  const int = (name: string, fallback?: number): number => {
    const raw = env[name];
    if (raw === undefined && fallback !== undefined) return fallback;
    const v = Number(raw);
    if (raw === undefined || !Number.isInteger(v) || v < 0)
      throw new CollectiveError(`environment variable ${name}=${raw ?? '(unset)'}: expected a non-negative integer`);
    return v;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (worldSize < 1 || rank >= worldSize)
    throw new CollectiveError(`RANK=${rank} WORLD_SIZE=${worldSize}: the rank must be below the world size`);
  const masterPort = int('MASTER_PORT', 29500);
  if (masterPort < 1 || masterPort > 65535) throw new CollectiveError(`MASTER_PORT=${masterPort}: not a TCP port`);
  return {
    rank,
    worldSize,
    localRank: int('LOCAL_RANK', rank),
    nodeRank: int('NODE_RANK', 0),
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort,
  };
}

/** The open star: rank 0 holds a reader per peer; every other rank one to rank 0. */
export interface Star {
  rank: number;
  worldSize: number;
  /** Rank 0's handout (the NCCL unique id), the same bytes on every rank. */
  handout: Uint8Array;
  /** By peer rank: rank 0's peers are 1…N−1; every other rank's only peer is 0. */
  peers: Map<number, FrameReader>;
  timeoutMs: number;
  close(): void;
}

/**
 * Meet the other ranks. Rank 0 calls `makeHandout()` once everyone has arrived and sends its
 * bytes to all. Fails after `timeoutMs` naming the ranks that did not arrive.
 */
export async function rendezvous(env: RankEnv, timeoutMs: number, makeHandout: () => Uint8Array = () => new Uint8Array(0)): Promise<Star> {
  return env.rank === 0 ? await host(env, timeoutMs, makeHandout) : await join(env, timeoutMs);
}

async function host(env: RankEnv, timeoutMs: number, makeHandout: () => Uint8Array): Promise<Star> {
  const peers = new Map<number, FrameReader>();
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new CollectiveError(`rank 0: cannot listen on port ${env.masterPort} (${err.code ?? err.message}); choose another --master-port`),
      ),
    );
    server.listen(env.masterPort, resolve);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = Array.from({ length: env.worldSize - 1 }, (_, i) => i + 1).filter((r) => !peers.has(r));
        reject(
          new CollectiveError(
            `rendezvous at port ${env.masterPort}: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not join within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
      if (env.worldSize === 1) {
        clearTimeout(timer);
        resolve();
      }
      server.on('connection', (socket) => {
        socket.setNoDelay(true);
        const reader = new FrameReader(socket, 'a joining rank');
        reader.next(timeoutMs, 'its hello').then(
          ({ header }) => {
            const rank = header.rank as number;
            const problem =
              header.worldSize !== env.worldSize
                ? `rank ${rank} was started with WORLD_SIZE ${String(header.worldSize)}, rank 0 with ${env.worldSize}`
                : !Number.isInteger(rank) || rank < 1 || rank >= env.worldSize
                  ? `a rank said it is rank ${String(rank)}, not one of 1…${env.worldSize - 1}`
                  : peers.has(rank)
                    ? `two processes joined as rank ${rank}`
                    : null;
            if (problem) {
              clearTimeout(timer);
              reject(new CollectiveError(`rendezvous: ${problem}`));
              return;
            }
            reader.peer = `rank ${rank}`;
            peers.set(rank, reader);
            if (peers.size === env.worldSize - 1) {
              clearTimeout(timer);
              resolve();
            }
          },
          () => {
            /* a connection that never said hello: ignored; the timeout names the missing rank */
          },
        );
      });
    });
  } catch (err) {
    for (const p of peers.values()) p.close();
    server.close();
    throw err;
  }
  server.close(); // no one else may join; the peers' sockets stay open
  const handout = makeHandout();
  for (const p of peers.values()) sendFrame(p.socket, { welcome: true }, handout);
  return {
    rank: 0,
    worldSize: env.worldSize,
    handout,
    peers,
    timeoutMs,
    close: () => {
      for (const p of peers.values()) p.close();
    },
  };
}

async function join(env: RankEnv, timeoutMs: number): Promise<Star> {
  const deadline = Date.now() + timeoutMs;
  let socket: net.Socket | null = null;
  let lastError = '';
  while (!socket) {
    try {
      socket = await connect(env.masterAddr, env.masterPort);
    } catch (err) {
      lastError = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      if (Date.now() >= deadline) {
        throw new CollectiveError(
          `rank ${env.rank}: no rank 0 at ${env.masterAddr}:${env.masterPort} within ${timeoutMs / 1000} s (${lastError})`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  socket.setNoDelay(true);
  const reader = new FrameReader(socket, 'rank 0');
  sendFrame(socket, { rank: env.rank, worldSize: env.worldSize });
  const { header, payload } = await reader.next(Math.max(1, deadline - Date.now()), 'the rendezvous of every rank');
  if (header.welcome !== true) throw new CollectiveError(`rank ${env.rank}: rank 0 answered the rendezvous with ${JSON.stringify(header)}`);
  return {
    rank: env.rank,
    worldSize: env.worldSize,
    handout: payload,
    peers: new Map([[0, reader]]),
    timeoutMs,
    close: () => reader.close(),
  };
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err) => {
      s.destroy();
      reject(err);
    });
  });
}
