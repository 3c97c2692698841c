/**
 * Messages over a TCP socket between ranks: a frame is [u32 header bytes][u32 payload bytes]
 * [header JSON][payload]. A reader hands out frames in order and turns a closed socket, an error
 * or a silent peer into one CollectiveError naming the peer's rank.
 */
import type { Socket } from 'node:net';
import { CollectiveError } from './communicator.js';

export interface Frame {
  header: Record<string, unknown>;
  payload: Uint8Array;
}

export function sendFrame(socket: Socket, header: Record<string, unknown>, payload: Uint8Array = new Uint8Array(0)): void {
  const h = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32LE(h.length, 0);
  prefix.writeUInt32LE(payload.byteLength, 4);
  socket.write(Buffer.concat([prefix, h, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)]));
}

export class FrameReader {
  /** Received bytes not yet parsed, as chunks: joined only once a whole frame is there (large payloads arrive in thousands of chunks). */
  private chunks: Buffer[] = [];
  private received = 0;
  private readonly frames: Frame[] = [];
  private waiter: { resolve(f: Frame): void; reject(e: Error): void } | null = null;
  private failure: Error | null = null;

  /** `peer` names the other end in errors ("rank 1"); a hello may rename it. */
  constructor(
    readonly socket: Socket,
    public peer: string,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new CollectiveError(`${this.peer}: connection error (${err.message})`)));
    socket.on('close', () => this.fail(new CollectiveError(`${this.peer} disconnected (its process ended or was killed)`)));
  }

  /** The next frame, or an error if the peer is gone or silent for `timeoutMs`. */
  next(timeoutMs: number, waitingFor: string): Promise<Frame> {
    const ready = this.frames.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new CollectiveError(`${this.peer} did not answer within ${timeoutMs / 1000} s (${waitingFor})`));
      }, timeoutMs);
      this.waiter = {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Stop reporting the socket's end as a failure (an orderly close). */
  close(): void {
    this.failure ??= new CollectiveError(`${this.peer}: connection closed`);
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    while (this.received >= 8) {
      if (this.chunks[0]!.length < 8) this.chunks = [Buffer.concat(this.chunks)];
      const hLen = this.chunks[0]!.readUInt32LE(0);
      const pLen = this.chunks[0]!.readUInt32LE(4);
      const size = 8 + hLen + pLen;
      if (this.received < size) break;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const header = JSON.parse(all.subarray(8, 8 + hLen).toString('utf8')) as Record<string, unknown>;
      // Copy: the payload outlives the socket's buffer, and Float32Array views need alignment.
      const payload = new Uint8Array(all.subarray(8 + hLen, size));
      this.chunks = all.length > size ? [all.subarray(size)] : [];
      this.received -= size;
      this.deliver({ header, payload });
    }
  }

  private deliver(f: Frame): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w.resolve(f);
    else this.frames.push(f);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }
}
