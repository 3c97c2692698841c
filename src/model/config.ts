/** config.json → ModelSpec, through the family its model_type names. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ownFile } from '../io/insideFolder.js';
import { ConfigError, ConfigReader, type HfConfig } from './hfConfig.js';
import { familyFor, SUPPORTED_MODEL_TYPES } from './families/index.js';
import type { ModelSpec } from './spec.js';

/**
 * The largest config.json read: real ones are a few kB (a few hundred kB with label maps); a
 * larger file is not a config, and reading it whole could exhaust memory.
 */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

export function readHfConfig(dir: string): ConfigReader {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(dir, 'model folder not found');
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) throw new ConfigError(dir, 'missing config.json (expected a Hugging Face model folder)');
  ownFile(dir, 'config.json'); // inspect and estimate read only this file: it too must be the folder's own
  const stat = statSync(file);
  // A FIFO or device would block or never end; only a regular file is read.
  if (!stat.isFile()) throw new ConfigError(file, 'not a regular file');
  if (stat.size > MAX_CONFIG_BYTES)
    throw new ConfigError(file, `is ${stat.size} bytes; a config.json is at most ${MAX_CONFIG_BYTES} (16 MiB)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(file, `not valid JSON (${(err as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(file, 'expected a JSON object');
  return new ConfigReader(raw as HfConfig, file);
}

export function specFromConfig(reader: ConfigReader): ModelSpec {
  const modelType = reader.raw.model_type;
  if (typeof modelType !== 'string')
    throw new ConfigError(reader.file, `missing 'model_type' (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const family = familyFor(modelType);
  if (!family)
    throw new ConfigError(reader.file, `unsupported model_type '${modelType}': supported are ${SUPPORTED_MODEL_TYPES.join(', ')}`);
  return family.spec(reader);
}

export function readModelSpec(dir: string): ModelSpec {
  return specFromConfig(readHfConfig(dir));
}
