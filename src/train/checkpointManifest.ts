/**
 * A checkpoint's checksums: `checksums.json` holds the size and SHA-256 of every file the
 * checkpoint wrote, and is written last (inside the same atomic folder swap), so a
 * checkpoint whose bytes changed since — a flipped bit on disk, a file half-copied by hand
 * — is refused on resume and on export instead of continuing from damaged weights.
 *
 * Checkpoints written before typetune kept checksums have no manifest: they still load,
 * with a note saying they could not be verified.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { MANIFEST_FILE } from '../io/runLayout.js';

const MANIFEST_VERSION = 1;

interface FileSum {
  bytes: number;
  sha256: string;
}

interface Manifest {
  version: number;
  algorithm: 'sha256';
  files: Record<string, FileSum>;
}

/** A file's bytes as written: text (UTF-8), bytes, or bytes in chunks (as encodeSafetensors gives them). */
export type FileData = string | Uint8Array | Uint8Array[];

function sumOf(data: FileData): FileSum {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : Array.isArray(data) ? data : [data];
  const hash = createHash('sha256');
  let bytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bytes += c.byteLength;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** The manifest's text for the files a checkpoint writes, by name, in the bytes written. */
export function manifestFor(files: ReadonlyArray<readonly [name: string, data: FileData]>): string {
  const manifest: Manifest = { version: MANIFEST_VERSION, algorithm: 'sha256', files: {} };
  for (const [name, data] of files) manifest.files[name] = sumOf(data);
  return `${JSON.stringify(manifest, null, 1)}\n`;
}

/** How a checkpoint folder's files compare with its manifest. */
export type ManifestCheck =
  | { status: 'intact' }
  /** No manifest: written before typetune kept checksums. */
  | { status: 'unverified' }
  /** `file` differs from its checksum (or is missing); `reason` says how. */
  | { status: 'damaged'; file: string; reason: string };

/**
 * Check `names` (the files the checkpoint must hold) against the manifest in `dir`. Only these
 * names become paths: the manifest's own keys are looked up, never followed.
 */
export function checkManifest(dir: string, names: readonly string[]): ManifestCheck {
  const manifestFile = path.join(dir, MANIFEST_FILE);
  if (!existsSync(manifestFile)) return { status: 'unverified' };
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
  } catch {
    return { status: 'damaged', file: MANIFEST_FILE, reason: 'is not valid JSON' };
  }
  const files = manifest && typeof manifest === 'object' ? manifest.files : undefined;
  if (manifest.version !== MANIFEST_VERSION || manifest.algorithm !== 'sha256' || !files || typeof files !== 'object') {
    return { status: 'damaged', file: MANIFEST_FILE, reason: `is not a version-${MANIFEST_VERSION} sha256 manifest` };
  }
  for (const name of names) {
    const want = Object.hasOwn(files, name) ? files[name] : undefined;
    if (!want || typeof want.sha256 !== 'string' || typeof want.bytes !== 'number') {
      return { status: 'damaged', file: MANIFEST_FILE, reason: `has no checksum for ${name}` };
    }
    const file = path.join(dir, name);
    if (!existsSync(file)) return { status: 'damaged', file: name, reason: 'is missing' };
    // The size first: a truncated file is told without reading it.
    if (statSync(file).size !== want.bytes) return { status: 'damaged', file: name, reason: 'does not match its checksum' };
    if (sumOf(readFileSync(file)).sha256 !== want.sha256) return { status: 'damaged', file: name, reason: 'does not match its checksum' };
  }
  return { status: 'intact' };
}
