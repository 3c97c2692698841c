/**
 * Collectives between CPU processes over the rendezvous' TCP star (./rendezvous.ts): every rank
 * sends its part to rank 0, which checks that all called the same collective and sends the
 * parts back to everyone (host.ts then reduces in rank order, so results are bitwise those of the
 * loopback group and of one process's sums). For `train --gpus N --set model.backend=cpu` and CI;
 * GPUs use NCCL. A peer that dies makes the next collective fail naming it.
 */
import { CollectiveError } from './communicator.js';
import { HostCommunicator } from './host.js';
import type { Star } from './rendezvous.js';
import { sendFrame } from './wire.js';

const bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export class TcpCommunicator extends HostCommunicator {
  readonly kind = 'tcp';
  private seq = 0;

  constructor(private readonly star: Star) {
    super(star.rank, star.worldSize);
  }

  protected async exchange(op: string, data: Float32Array): Promise<Float32Array[]> {
    const seq = this.seq++;
    const { peers, timeoutMs } = this.star;
    if (this.rank !== 0) {
      sendFrame(peers.get(0)!.socket, { seq, op }, bytes(data));
      const { header, payload } = await peers.get(0)!.next(timeoutMs, `${op}, collective #${seq}`);
      if (header.error) throw new CollectiveError(String(header.error));
      return splitParts(payload, header.sizes as number[]);
    }
    const parts: Float32Array[] = [data];
    try {
      for (let r = 1; r < this.worldSize; r++) {
        const { header, payload } = await peers.get(r)!.next(timeoutMs, `${op}, collective #${seq}`);
        if (header.seq !== seq || header.op !== op) {
          throw new CollectiveError(
            `collective #${seq} disagrees: rank 0 calls ${op}, rank ${r} ${String(header.op)} (#${String(header.seq)})`,
          );
        }
        parts.push(new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4));
      }
    } catch (err) {
      // Tell the living peers why, so every rank fails with the same message.
      for (const p of peers.values()) if (!p.socket.destroyed) sendFrame(p.socket, { error: (err as Error).message });
      throw err;
    }
    const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      all.set(bytes(p), at);
      at += p.byteLength;
    }
    for (const p of peers.values()) sendFrame(p.socket, { sizes: parts.map((p) => p.length) }, all);
    return parts;
  }

  destroy(): void {
    this.star.close();
  }
}

function splitParts(payload: Uint8Array, sizes: number[]): Float32Array[] {
  const all = new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4);
  const out: Float32Array[] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}
