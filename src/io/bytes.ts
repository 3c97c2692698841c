/** Byte-buffer helpers shared by the file writers. */

/** The chunks joined into one array (small archives, buffered event records, tests). */
export function concatChunks(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
