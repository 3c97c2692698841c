/**
 * TensorBoard event files, written and read without TensorFlow.
 *
 * File: `events.out.tfevents.<10-digit unix seconds>.<hostname>` (the name TensorFlow's
 * EventsWriter uses; TensorBoard picks up any file whose name contains "tfevents").
 * Content: TFRecord framing around serialised `tensorflow.Event` protobufs:
 *   [u64 length LE][u32 masked crc32c(length bytes)][data][u32 masked crc32c(data)]
 * The first event carries `file_version: "brain.Event:2"`; each scalar is an Event with
 * wall_time (1, double), step (2, int64) and summary (5) → value (1) → {tag (1), simple_value (2, float)}.
 * A text (TensorBoard's Text tab, rendered as Markdown) is a value with metadata (9) →
 * plugin_data (1) → plugin_name (1) "text", and a rank-0 string tensor (8): dtype (1) DT_STRING
 * (7), an empty tensor_shape (2) and the UTF-8 bytes in string_val (8) — what
 * `tf.summary.text` writes.
 *
 * An event file is an append-only log that TensorBoard reads while it grows, so it is appended
 * to in place (as TensorFlow does) rather than written to a temporary name and renamed: a crash
 * can at worst cut the last record short, which TensorBoard and `readEventFile` tolerate.
 */
import { openSync, writeSync, closeSync, fsyncSync, mkdirSync, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { maskedCrc32c } from './crc32c.js';
import { ProtoWriter, decodeMessage, proto, ProtoError } from './protobuf.js';
import { concatChunks } from './bytes.js';

export const EVENT_FILE_VERSION = 'brain.Event:2';

/** One TFRecord frame around `data`. */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

export interface ScalarValue {
  tag: string;
  value: number;
}

export interface TextValue {
  tag: string;
  text: string;
}

export interface EventRecord {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: ScalarValue[];
  /** Text summaries; absent when the event has none. */
  texts?: TextValue[];
}

const DT_STRING = 7;
const utf8 = new TextEncoder();

/** Serialise one `Event` message. */
export function encodeEvent(event: EventRecord): Uint8Array {
  const w = new ProtoWriter();
  w.double(1, event.wallTime);
  if (event.step !== 0) w.varint(2, BigInt(event.step));
  if (event.fileVersion !== undefined) w.string(3, event.fileVersion);
  const texts = event.texts ?? [];
  if (event.scalars.length > 0 || texts.length > 0) {
    w.message(5, (summary) => {
      for (const s of event.scalars) summary.message(1, (v) => v.string(1, s.tag).float(2, s.value));
      for (const t of texts) {
        summary.message(1, (v) =>
          v
            .string(1, t.tag)
            .message(9, (meta) => meta.message(1, (plugin) => plugin.string(1, 'text')))
            .message(8, (tensor) =>
              tensor
                .varint(1, DT_STRING)
                .message(2, () => {})
                .bytes(8, utf8.encode(t.text)),
            ),
        );
      }
    });
  }
  return w.finish();
}

export interface TensorBoardWriterOptions {
  /** Pending records are written at most this long after they were logged (default 1000 ms); 0 writes every call through. */
  flushIntervalMs?: number;
  /** Host name in the file name (default `os.hostname()`). */
  hostname?: string;
  /** Seconds since the epoch in the file name and the first event (default now). */
  wallTime?: number;
}

/**
 * Appends scalars to a new event file in `logDir`.
 *
 *   const tb = new TensorBoardWriter('runs/loreft');
 *   tb.scalar('train/loss', 2.31, step);
 *   tb.close();
 */
export class TensorBoardWriter {
  readonly file: string;
  private fd: number | null;
  private pending: Uint8Array[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly flushIntervalMs: number;
  private readonly onExit = (): void => this.flush();

  constructor(
    readonly logDir: string,
    options: TensorBoardWriterOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    const wallTime = options.wallTime ?? Date.now() / 1000;
    const host = (options.hostname ?? os.hostname()).replace(/[/\\]/g, '_');
    mkdirSync(logDir, { recursive: true });
    const base = `events.out.tfevents.${String(Math.floor(wallTime)).padStart(10, '0')}.${host}`;
    // Two writers started in the same second in the same folder must not share a file.
    let file = path.join(logDir, base);
    for (let n = 1; existsSync(file); n++) file = path.join(logDir, `${base}.${process.pid}.${n}`);
    this.file = file;
    this.fd = openSync(file, 'a');
    this.writeNow(frameRecord(encodeEvent({ wallTime, step: 0, fileVersion: EVENT_FILE_VERSION, scalars: [] })));
    process.once('exit', this.onExit);
  }

  /** Log one scalar at `step`; `wallTime` in seconds since the epoch (default now). */
  scalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.scalars({ [tag]: value }, step, wallTime);
  }

  /** Log several scalars of the same step as one event. */
  scalars(values: Record<string, number>, step: number, wallTime?: number): void {
    const scalars: ScalarValue[] = [];
    for (const [tag, value] of Object.entries(values)) {
      if (typeof value !== 'number') throw new Error(`TensorBoardWriter: scalar '${tag}' must be a number, got ${typeof value}`);
      scalars.push({ tag, value });
    }
    this.append({ wallTime: wallTime ?? Date.now() / 1000, step, scalars });
  }

  /** Log a text (Markdown in TensorBoard's Text tab) at `step`. */
  text(tag: string, text: string, step: number, wallTime?: number): void {
    this.append({ wallTime: wallTime ?? Date.now() / 1000, step, scalars: [], texts: [{ tag, text }] });
  }

  private append(event: EventRecord): void {
    if (this.fd === null) throw new Error(`TensorBoardWriter: ${this.file} is closed`);
    if (!Number.isSafeInteger(event.step)) throw new Error(`TensorBoardWriter: step must be an integer, got ${event.step}`);
    const record = frameRecord(encodeEvent(event));
    if (this.flushIntervalMs <= 0) {
      this.writeNow(record);
      return;
    }
    this.pending.push(record);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Write everything logged so far to the file. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.fd === null || this.pending.length === 0) return;
    const records = this.pending;
    this.pending = [];
    this.writeNow(concatChunks(records));
  }

  /** Flush, sync to disk and close the file. Further scalars are errors. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    process.removeListener('exit', this.onExit);
  }

  private writeNow(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) at += writeSync(this.fd!, bytes, at, bytes.length - at);
  }
}

export class EventFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventFileError';
  }
}

export interface ReadEventFileOptions {
  /** A last record cut short (a file still being written, or a crash) is skipped instead of an error. Default true. */
  allowTruncatedTail?: boolean;
}

/**
 * Read an event file: checks both CRCs of every record and decodes each `Event`'s wall time,
 * step, file version, simple_value scalars and string-tensor texts (other summary kinds are skipped).
 */
export function readEventFile(file: string, options: ReadEventFileOptions = {}): EventRecord[] {
  const bytes = readFileSync(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const allowTail = options.allowTruncatedTail ?? true;
  const events: EventRecord[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const at = pos;
    if (pos + 12 > bytes.length) {
      if (allowTail) break;
      throw new EventFileError(`${file}: record at byte ${at} is truncated (header needs 12 bytes, ${bytes.length - pos} left)`);
    }
    const lengthBytes = bytes.subarray(pos, pos + 8);
    if (view.getUint32(pos + 8, true) !== maskedCrc32c(lengthBytes)) {
      throw new EventFileError(`${file}: record at byte ${at}: length CRC mismatch (not an event file, or corrupted)`);
    }
    const length = Number(view.getBigUint64(pos, true));
    pos += 12;
    if (pos + length + 4 > bytes.length) {
      if (allowTail) break;
      throw new EventFileError(`${file}: record at byte ${at} is truncated (${length} data bytes announced, ${bytes.length - pos} left)`);
    }
    const data = bytes.subarray(pos, pos + length);
    if (view.getUint32(pos + length, true) !== maskedCrc32c(data)) {
      throw new EventFileError(`${file}: record at byte ${at}: data CRC mismatch (corrupted)`);
    }
    pos += length + 4;
    try {
      events.push(decodeEvent(data));
    } catch (err) {
      if (err instanceof ProtoError) throw new EventFileError(`${file}: record at byte ${at}: bad Event protobuf: ${err.message}`);
      throw err;
    }
  }
  return events;
}

function decodeEvent(data: Uint8Array): EventRecord {
  const event: EventRecord = { wallTime: 0, step: 0, scalars: [] };
  for (const f of decodeMessage(data)) {
    if (f.field === 1 && f.wireType === 1) event.wallTime = proto.double(f.value);
    else if (f.field === 2 && f.wireType === 0) event.step = Number(proto.int64(f.value));
    else if (f.field === 3 && f.wireType === 2) event.fileVersion = proto.string(f.value);
    else if (f.field === 5 && f.wireType === 2) {
      for (const v of decodeMessage(f.value)) {
        if (v.field !== 1 || v.wireType !== 2) continue;
        let tag: string | undefined;
        let value: number | undefined;
        let text: string | undefined;
        for (const g of decodeMessage(v.value)) {
          if (g.field === 1 && g.wireType === 2) tag = proto.string(g.value);
          else if (g.field === 2 && g.wireType === 5) value = proto.float(g.value);
          else if (g.field === 8 && g.wireType === 2) text = stringTensor(g.value);
        }
        if (tag !== undefined && value !== undefined) event.scalars.push({ tag, value });
        else if (tag !== undefined && text !== undefined) (event.texts ??= []).push({ tag, text });
      }
    }
  }
  return event;
}

/** The first string of a DT_STRING TensorProto; undefined for any other tensor. */
function stringTensor(bytes: Uint8Array): string | undefined {
  let dtype = 0;
  let first: string | undefined;
  for (const f of decodeMessage(bytes)) {
    if (f.field === 1 && f.wireType === 0) dtype = Number(proto.int64(f.value));
    else if (f.field === 8 && f.wireType === 2) first ??= proto.string(f.value);
  }
  return dtype === DT_STRING ? first : undefined;
}
