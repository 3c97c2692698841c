/**
 * The scratch of one fused kernel's programs, in one allocation a program rather than one a
 * buffer: a request gets a placeholder pointer at once (the recording goes on naming it, with
 * offsets added), and before a program runs every request made since the last run is placed in
 * one block of the pool — a fused half asked for 10–20 buffers, each a call into the addon (a
 * step of Llama-3.2-1B LoRA: ~1,000 of its 1,641 calls). The program's placeholders become
 * addresses as it is handed to the addon (Program.run). Each request keeps the pool's 256-byte
 * alignment and size, and every block lives, as the buffers did, until the kernel returns, so
 * the pool's peak is what it was.
 */
import { poolBytes } from '../poolBytes.js';
import type { CudaBackend, TensorRef } from './backend.js';

/** Placeholders are SCRATCH_BASE + request · REQUEST_SPAN + offset: above any device or pinned host address. */
export const SCRATCH_BASE = 2 ** 51;
const REQUEST_SPAN = 2 ** 36;
const MAX_REQUESTS = 2 ** 15; // SCRATCH_BASE + MAX_REQUESTS · REQUEST_SPAN = 2^52, exact in a double

export const isScratchPlaceholder = (v: number) => v >= SCRATCH_BASE;

export class ScratchArena {
  private readonly bytes: number[] = [];
  private readonly address: number[] = [];
  private placed = 0;

  constructor(
    private readonly backend: CudaBackend,
    /** Where the blocks go, freed when the kernel returns (the kernel's temps). */
    private readonly temps: TensorRef[],
  ) {}

  /** A placeholder for `bytes` of scratch. */
  request(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes >= REQUEST_SPAN)
      throw new Error(`scratch: ${bytes} bytes is not a size below ${REQUEST_SPAN} a request can have`);
    if (this.bytes.length >= MAX_REQUESTS) throw new Error(`scratch: more than ${MAX_REQUESTS} requests in one kernel`);
    this.bytes.push(bytes);
    return SCRATCH_BASE + (this.bytes.length - 1) * REQUEST_SPAN;
  }

  /** Places every request made since the last call in one new block. */
  place(): void {
    if (this.placed === this.bytes.length) return;
    let total = 0;
    for (let i = this.placed; i < this.bytes.length; i++) total += poolBytes(this.bytes[i]!);
    const block = this.backend.makeOutput([total], 'bool', 'u8');
    this.temps.push(block);
    let at = this.backend.ptr(block);
    for (; this.placed < this.bytes.length; this.placed++) {
      this.address.push(at);
      at += poolBytes(this.bytes[this.placed]!);
    }
  }

  /** The address a placeholder (plus an offset within its request) stands for. */
  resolve(v: number): number {
    const rel = v - SCRATCH_BASE;
    const request = Math.floor(rel / REQUEST_SPAN),
      offset = rel - request * REQUEST_SPAN;
    const address = this.address[request];
    if (address === undefined || offset > this.bytes[request]!)
      throw new Error(`scratch: ${v} is no placed request's address (request ${request}, offset ${offset})`);
    return address + offset;
  }
}
