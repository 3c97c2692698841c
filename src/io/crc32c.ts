/**
 * The two CRC-32 variants typetune's file formats need, computed with a byte-wise table:
 * - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): TensorBoard / TFRecord framing;
 * - CRC-32 (IEEE, reflected polynomial 0xEDB88320): zip archives (torch.save files).
 */

function makeTable(reflectedPoly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ reflectedPoly : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

const CASTAGNOLI = makeTable(0x82f63b78);
const IEEE = makeTable(0xedb88320);

function update(table: Uint32Array, crc: number, bytes: Uint8Array): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of `bytes`; pass a previous result as `crc` to continue over more bytes. */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  return update(CASTAGNOLI, crc, bytes);
}

/** CRC-32 (IEEE, as zip and zlib use) of `bytes`; pass a previous result to continue. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  return update(IEEE, crc, bytes);
}

/**
 * TFRecord's masked CRC-32C: rotate right by 15 and add a constant, so that a CRC computed
 * over data that itself contains CRCs is not trivially related to them.
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Inverse of the mask, for readers that want the plain CRC back. */
export function unmaskCrc32c(masked: number): number {
  const rot = (masked - 0xa282ead8) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}
