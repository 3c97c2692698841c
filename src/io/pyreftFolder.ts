/**
 * pyreft folders, as `ReftModel.save` (pyvene's `IntervenableModel.save`) writes them:
 *
 *   config.json   pyvene's IntervenableConfig, written by transformers' PretrainedConfig
 *                 (`json.dumps(..., indent=2, sort_keys=True) + "\n"`):
 *                   representations      one 14-element list per intervention, the fields of
 *                                        pyvene's RepresentationConfig: [layer, component, unit,
 *                                        max_number_of_units, low_rank_dimension, intervention_type,
 *                                        intervention, subspace_partition, group_key,
 *                                        intervention_link_key, moe_key, source_representation,
 *                                        hidden_source_representation, latent_dim]
 *                   intervention_types   "<class 'pyreft.interventions.LoreftIntervention'>", …
 *                   intervention_dimensions, intervention_constant_sources, sorted_keys, mode
 *   intkey_<key>.bin   one torch.save'd state dict per intervention, <key> being pyvene's
 *                 `layer_<L>_comp_<component>_unit_<unit>_nunit_<n>#<i>` (i counts repeats).
 *
 * This module moves plain data (shapes and Float32Arrays) in and out; what the tensors mean
 * is src/adapters/reft's business. pyreft state dicts per class (H = embed dim, r = rank):
 *   LoreftIntervention   weight [r,H], bias [r], rotate_layer [H,r]   (its own state_dict())
 *   DireftIntervention   rotate_layer.parametrizations.weight.original [H,r],
 *                        rotate_layer.parametrizations.weight.0.base [H,H],
 *                        learned_source.weight [r,H], learned_source.bias [r]
 *   NoreftIntervention, NodireftIntervention
 *                        proj_layer.weight [r,H], proj_layer.bias [r] (if add_bias),
 *                        learned_source.weight [r,H], learned_source.bias [r]
 *   ConsreftIntervention, LobireftIntervention
 *                        learned_source [r], rotate_layer.parametrizations.weight.original [H,r],
 *                        rotate_layer.parametrizations.weight.0.base [H,H]
 * All but LoReFT use torch's default state_dict, which also holds pyvene's int64 buffers
 * `embed_dim` and `interchange_dim` (both H): the reader checks and drops them, the writer adds
 * them back where pyreft has them, so that pyreft's strict load_state_dict accepts the file.
 */
import { readFile, access } from 'node:fs/promises';
import path from 'node:path';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';
import { toFloat32 } from './dtypes.js';
import { readTorchFile, writeTorchFile, TorchFileError, type TorchTensor } from './torchSave.js';
import { UnsafePickleError } from './torchPickle.js';
import { ZipError } from './zip.js';
import { parsePositionNotation } from '../util/positionNotation.js';

export class PyreftFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PyreftFolderError';
  }
}

export const PYREFT_INTERVENTION_TYPES = [
  'LoreftIntervention',
  'DireftIntervention',
  'NoreftIntervention',
  'NodireftIntervention',
  'ConsreftIntervention',
  'LobireftIntervention',
] as const;
export type PyreftInterventionType = (typeof PYREFT_INTERVENTION_TYPES)[number];

export interface PyreftTensor {
  shape: number[];
  data: Float32Array;
}

export interface PyreftIntervention {
  /** pyvene key, e.g. `layer_0_comp_block_output_unit_pos_nunit_1#0`. */
  key: string;
  layer: number;
  /** e.g. `block_output`. */
  component: string;
  /** low_rank_dimension. */
  rank: number;
  /** pyreft class name; writing also accepts pyvene's `<class 'pyreft.interventions.X'>` form. */
  type: PyreftInterventionType | string;
  /** The hidden size it acts on (intervention_dimensions). */
  embedDim: number;
  /** The state dict as pyreft saves it, in f32, without pyvene's embed_dim/interchange_dim buffers. */
  state: Record<string, PyreftTensor>;
  /** RepresentationConfig.unit (default 'pos') and max_number_of_units (default 1). */
  unit?: string;
  maxNumberOfUnits?: number;
  /** RepresentationConfig fields 5…13 when any is set (kept so that a read folder writes back unchanged). */
  representationExtras?: unknown[];
}

export interface PyreftFolder {
  interventions: PyreftIntervention[];
  /**
   * Which prompt tokens the interventions act on, in pyreft's notation ("f1+l1", "l1" …).
   * pyvene's config has no such field — pyreft scripts pass positions again at inference —
   * so typetune records them under config.json's `positions` (pyvene keeps unknown config
   * keys as plain attributes). Folders written by pyreft itself lack it.
   */
  positions?: string;
  /** config.json as read; on writing, keys typetune does not manage (transformers_version …) are kept. */
  config?: Record<string, unknown>;
}

const CLASS_PREFIX = "<class 'pyreft.interventions.";
const BUFFERS = ['embed_dim', 'interchange_dim'] as const;
const ROT_ORIGINAL = 'rotate_layer.parametrizations.weight.original';
const ROT_BASE = 'rotate_layer.parametrizations.weight.0.base';

type Dim = 'H' | 'r';
interface StateEntry {
  name: string;
  shape: Dim[];
  optional?: boolean;
  buffers?: true;
}

/** pyreft's state-dict entries per class, in torch's state_dict order (`buffers` marks where pyvene's go). */
const STATE_LAYOUT: Record<PyreftInterventionType, StateEntry[]> = {
  LoreftIntervention: [
    { name: 'weight', shape: ['r', 'H'] },
    { name: 'bias', shape: ['r'] },
    { name: 'rotate_layer', shape: ['H', 'r'] },
  ],
  DireftIntervention: [
    { name: '', shape: [], buffers: true },
    { name: ROT_ORIGINAL, shape: ['H', 'r'] },
    { name: ROT_BASE, shape: ['H', 'H'] },
    { name: 'learned_source.weight', shape: ['r', 'H'] },
    { name: 'learned_source.bias', shape: ['r'] },
  ],
  NoreftIntervention: [
    { name: '', shape: [], buffers: true },
    { name: 'proj_layer.weight', shape: ['r', 'H'] },
    { name: 'proj_layer.bias', shape: ['r'], optional: true },
    { name: 'learned_source.weight', shape: ['r', 'H'] },
    { name: 'learned_source.bias', shape: ['r'] },
  ],
  NodireftIntervention: [
    { name: '', shape: [], buffers: true },
    { name: 'proj_layer.weight', shape: ['r', 'H'] },
    { name: 'proj_layer.bias', shape: ['r'], optional: true },
    { name: 'learned_source.weight', shape: ['r', 'H'] },
    { name: 'learned_source.bias', shape: ['r'] },
  ],
  ConsreftIntervention: [
    { name: 'learned_source', shape: ['r'] },
    { name: '', shape: [], buffers: true },
    { name: ROT_ORIGINAL, shape: ['H', 'r'] },
    { name: ROT_BASE, shape: ['H', 'H'] },
  ],
  LobireftIntervention: [
    { name: 'learned_source', shape: ['r'] },
    { name: '', shape: [], buffers: true },
    { name: ROT_ORIGINAL, shape: ['H', 'r'] },
    { name: ROT_BASE, shape: ['H', 'H'] },
  ],
};

/** The short class name for `LoreftIntervention` or `<class 'pyreft.interventions.LoreftIntervention'>`. */
export function pyreftTypeName(type: string, where: string): PyreftInterventionType {
  const short = type.startsWith(CLASS_PREFIX) && type.endsWith("'>") ? type.slice(CLASS_PREFIX.length, -2) : type;
  if (!(PYREFT_INTERVENTION_TYPES as readonly string[]).includes(short)) {
    throw new PyreftFolderError(
      `${where}: unknown intervention type ${JSON.stringify(type)}; supported: ${PYREFT_INTERVENTION_TYPES.join(', ')}`,
    );
  }
  return short as PyreftInterventionType;
}

/**
 * pyvene's keys for a list of representations (IntervenableModel._get_representation_key):
 * a component with a '.' is a module path and drops the layer; '#i' counts repeats of a key.
 */
export function pyveneKeys(reps: Array<{ layer: number; component: string; unit?: string; maxNumberOfUnits?: number }>): string[] {
  const seen = new Map<string, number>();
  return reps.map((r) => {
    const unit = (r.unit ?? 'pos').replaceAll('.', '_');
    const n = r.maxNumberOfUnits ?? 1;
    const proposal = r.component.includes('.')
      ? `comp_${r.component.replaceAll('.', '_')}_unit_${unit}_nunit_${n}`
      : `layer_${r.layer}_comp_${r.component}_unit_${unit}_nunit_${n}`;
    const count = seen.has(proposal) ? seen.get(proposal)! + 1 : 0;
    seen.set(proposal, count);
    return `${proposal}#${count}`;
  });
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Read a pyreft folder: config.json and every intkey_<key>.bin, checked against each other. */
export async function readPyreftFolder(dir: string): Promise<PyreftFolder & { config: Record<string, unknown> }> {
  const configFile = path.join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(configFile, 'utf8');
  } catch {
    throw new PyreftFolderError(
      `${dir}: no config.json — not a pyreft folder (ReftModel.save writes config.json and intkey_<key>.bin files)`,
    );
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new PyreftFolderError(`${configFile}: not valid JSON (${(err as Error).message})`);
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new PyreftFolderError(`${configFile}: must hold a JSON object`);
  const positions = readPositions(config.positions, configFile);

  const reps = config.representations;
  if (!Array.isArray(reps) || reps.length === 0) throw new PyreftFolderError(`${configFile}: 'representations' must be a non-empty list`);
  const parsed = reps.map((r, i) => parseRepresentation(r, `${configFile}: representations[${i}]`));
  const n = parsed.length;
  const list = (name: string): unknown[] | undefined => {
    const v = config[name];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.length !== n)
      throw new PyreftFolderError(`${configFile}: '${name}' must be a list of ${n} entries (one per representation)`);
    return v;
  };
  const rawTypes = typeof config.intervention_types === 'string' ? Array(n).fill(config.intervention_types) : list('intervention_types');
  if (!rawTypes) throw new PyreftFolderError(`${configFile}: 'intervention_types' is missing`);
  const dims = list('intervention_dimensions');
  const keys = pyveneKeys(parsed);
  const sorted = list('sorted_keys');
  if (sorted?.some((k, i) => k !== keys[i])) {
    throw new PyreftFolderError(
      `${configFile}: sorted_keys ${JSON.stringify(sorted)} do not match the keys pyvene derives from representations ${JSON.stringify(keys)}`,
    );
  }

  const interventions: PyreftIntervention[] = [];
  for (let i = 0; i < n; i++) {
    const key = keys[i]!;
    const rep = parsed[i]!;
    const rawType = rawTypes[i];
    if (typeof rawType !== 'string') throw new PyreftFolderError(`${configFile}: intervention_types[${i}] must be a string`);
    const type = pyreftTypeName(rawType, `${configFile}: intervention_types[${i}]`);
    const file = path.join(dir, `intkey_${key}.bin`);
    if (
      !(await access(file).then(
        () => true,
        () => false,
      ))
    ) {
      throw new PyreftFolderError(`${dir}: intervention '${key}' (sorted_keys[${i}]) has no intkey_${key}.bin`);
    }
    let tensors: Map<string, TorchTensor>;
    try {
      tensors = await readTorchFile(file);
    } catch (err) {
      if (err instanceof TorchFileError || err instanceof UnsafePickleError || err instanceof ZipError)
        throw new PyreftFolderError(err.message);
      throw err;
    }
    const dim = dims?.[i];
    if (dim !== undefined && dim !== null && !isCount(dim))
      throw new PyreftFolderError(`${configFile}: intervention_dimensions[${i}] must be a positive integer or null`);
    const embedDim = typeof dim === 'number' ? dim : inferEmbedDim(type, tensors, file);
    const rank = rep.lowRankDimension ?? inferRank(type, tensors, file);
    const state = checkState(type, tensors, embedDim, rank, file);
    const iv: PyreftIntervention = { key, layer: rep.layer, component: rep.component, rank, type, embedDim, state };
    if (rep.unit !== 'pos') iv.unit = rep.unit;
    if (rep.maxNumberOfUnits !== 1) iv.maxNumberOfUnits = rep.maxNumberOfUnits;
    if (rep.extras.some((x) => x !== null)) iv.representationExtras = rep.extras;
    interventions.push(iv);
  }
  return { interventions, config, ...(positions === undefined ? {} : { positions }) };
}

/** config.json's `positions` (typetune's record of where the adapter was trained to act), checked. */
function readPositions(value: unknown, configFile: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  const counts = typeof value === 'string' ? parsePositionNotation(value) : null;
  if (!counts || counts.first + counts.last === 0) {
    throw new PyreftFolderError(
      `${configFile}: 'positions' is ${JSON.stringify(value)}; expected pyreft notation fN, lN or fN+lM selecting at least one token (e.g. "f1+l1", "l1")`,
    );
  }
  return value as string;
}

interface Representation {
  layer: number;
  component: string;
  unit: string;
  maxNumberOfUnits: number;
  lowRankDimension: number | null;
  extras: unknown[];
}

const REP_FIELDS = [
  'layer',
  'component',
  'unit',
  'max_number_of_units',
  'low_rank_dimension',
  'intervention_type',
  'intervention',
  'subspace_partition',
  'group_key',
  'intervention_link_key',
  'moe_key',
  'source_representation',
  'hidden_source_representation',
  'latent_dim',
];
// RepresentationConfig's defaults, for lists shorter than 14 and dicts that leave fields out.
const REP_DEFAULTS: unknown[] = [0, 'block_output', 'pos', 1, null, null, null, null, null, null, null, null, null, null];

function parseRepresentation(r: unknown, where: string): Representation {
  let values: unknown[];
  if (Array.isArray(r)) {
    if (r.length > REP_FIELDS.length)
      throw new PyreftFolderError(`${where}: has ${r.length} fields; RepresentationConfig has ${REP_FIELDS.length}`);
    values = REP_DEFAULTS.map((d, i) => (i < r.length ? r[i] : d));
  } else if (r && typeof r === 'object') {
    const o = r as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => !REP_FIELDS.includes(k));
    if (unknown.length)
      throw new PyreftFolderError(`${where}: unknown field '${unknown[0]}'; RepresentationConfig has ${REP_FIELDS.join(', ')}`);
    values = REP_FIELDS.map((f, i) => (f in o ? o[f] : REP_DEFAULTS[i]));
  } else {
    throw new PyreftFolderError(`${where}: must be a list (or dict) of RepresentationConfig fields`);
  }
  const [layer, component, unit, nunit, rank] = values;
  if (!Number.isInteger(layer) || (layer as number) < 0)
    throw new PyreftFolderError(`${where}: layer must be a non-negative integer, got ${JSON.stringify(layer)}`);
  if (typeof component !== 'string' || !component)
    throw new PyreftFolderError(`${where}: component must be a string such as "block_output", got ${JSON.stringify(component)}`);
  if (typeof unit !== 'string') throw new PyreftFolderError(`${where}: unit must be a string such as "pos", got ${JSON.stringify(unit)}`);
  if (!isCount(nunit))
    throw new PyreftFolderError(`${where}: max_number_of_units must be a positive integer, got ${JSON.stringify(nunit)}`);
  if (rank !== null && !isCount(rank))
    throw new PyreftFolderError(`${where}: low_rank_dimension must be a positive integer, got ${JSON.stringify(rank)}`);
  return {
    layer: layer as number,
    component,
    unit,
    maxNumberOfUnits: nunit as number,
    lowRankDimension: rank as number | null,
    extras: values.slice(5),
  };
}

function isCount(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) > 0;
}

/** Without intervention_dimensions (older pyvene), H is read off the tensors. */
function inferEmbedDim(type: PyreftInterventionType, tensors: Map<string, TorchTensor>, file: string): number {
  const buffer = tensors.get('embed_dim');
  if (buffer && buffer.shape.length === 0) return Number(buffer.data[0]);
  const h = STATE_LAYOUT[type].find((e) => e.shape.includes('H') && tensors.has(e.name));
  if (!h)
    throw new PyreftFolderError(
      `${file}: cannot tell the embedding size (no intervention_dimensions, no ${STATE_LAYOUT[type]
        .map((e) => e.name)
        .filter(Boolean)
        .join(' / ')})`,
    );
  return tensors.get(h.name)!.shape[h.shape.indexOf('H')]!;
}

function inferRank(type: PyreftInterventionType, tensors: Map<string, TorchTensor>, file: string): number {
  const e = STATE_LAYOUT[type].find((x) => x.shape.includes('r') && tensors.has(x.name));
  if (!e) throw new PyreftFolderError(`${file}: cannot tell the rank (no low_rank_dimension in config.json, no rank-sized tensor)`);
  return tensors.get(e.name)!.shape[e.shape.indexOf('r')]!;
}

function expectedShape(shape: Dim[], embedDim: number, rank: number): number[] {
  return shape.map((d) => (d === 'H' ? embedDim : rank));
}

function describeLayout(type: PyreftInterventionType, embedDim: number, rank: number): string {
  return STATE_LAYOUT[type]
    .filter((e) => !e.buffers)
    .map((e) => `${e.name} [${expectedShape(e.shape, embedDim, rank).join(', ')}]${e.optional ? ' (optional)' : ''}`)
    .join(', ');
}

function checkState(
  type: PyreftInterventionType,
  tensors: Map<string, TorchTensor>,
  embedDim: number,
  rank: number,
  file: string,
): Record<string, PyreftTensor> {
  const layout = STATE_LAYOUT[type];
  const hasBuffers = layout.some((e) => e.buffers);
  const state: Record<string, PyreftTensor> = {};
  for (const [name, t] of tensors) {
    if (hasBuffers && (BUFFERS as readonly string[]).includes(name)) {
      if (t.shape.length !== 0 || Number(t.data[0]) !== embedDim) {
        throw new PyreftFolderError(
          `${file}: buffer '${name}' is ${t.shape.length ? `shaped [${t.shape.join(', ')}]` : Number(t.data[0])}, expected the scalar ${embedDim} (intervention_dimensions)`,
        );
      }
      continue;
    }
    const entry = layout.find((e) => e.name === name && !e.buffers);
    if (!entry)
      throw new PyreftFolderError(`${file}: unexpected tensor '${name}' for a ${type}; it holds ${describeLayout(type, embedDim, rank)}`);
    const want = expectedShape(entry.shape, embedDim, rank);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new PyreftFolderError(
        `${file}: '${name}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}] (embed dim ${embedDim}, rank ${rank})`,
      );
    }
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype))
      throw new PyreftFolderError(`${file}: '${name}' is ${t.dtype}, expected a floating-point tensor`);
    state[name] = { shape: t.shape, data: toFloat32(t.dtype, t.data) };
  }
  for (const e of layout) {
    if (!e.buffers && !e.optional && !(e.name in state)) {
      throw new PyreftFolderError(`${file}: missing '${e.name}' for a ${type}; it holds ${describeLayout(type, embedDim, rank)}`);
    }
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** config.json keys derived from the interventions (others in `folder.config` are carried over). */
const MANAGED_KEYS = [
  'representations',
  'intervention_types',
  'intervention_dimensions',
  'intervention_constant_sources',
  'sorted_keys',
  'mode',
  'positions',
];

/** The config.json pyvene would write for these interventions, as a JSON value. */
export function pyreftConfig(folder: PyreftFolder): Record<string, unknown> {
  const ivs = folder.interventions;
  if (ivs.length === 0) throw new PyreftFolderError('writePyreftFolder: no interventions to write');
  const keys = pyveneKeys(ivs);
  const config: Record<string, unknown> = {};
  // defineProperty: a `__proto__` key read from JSON stays a plain key instead of replacing the prototype.
  for (const [k, v] of Object.entries(folder.config ?? {})) {
    if (!MANAGED_KEYS.includes(k)) Object.defineProperty(config, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  ivs.forEach((iv, i) => {
    if (iv.key !== keys[i]) {
      throw new PyreftFolderError(
        `writePyreftFolder: interventions[${i}] has key '${iv.key}', but pyvene derives '${keys[i]}' from its layer, component and position in the list`,
      );
    }
  });
  Object.assign(config, {
    representations: ivs.map((iv) => {
      const extras = iv.representationExtras ?? [];
      return [
        iv.layer,
        iv.component,
        iv.unit ?? 'pos',
        iv.maxNumberOfUnits ?? 1,
        iv.rank,
        ...REP_DEFAULTS.slice(5).map((d, j) => (j < extras.length ? extras[j] : d)),
      ];
    }),
    intervention_types: ivs.map(
      (iv, i) => `${CLASS_PREFIX}${pyreftTypeName(iv.type, `writePyreftFolder: interventions[${i}] ('${iv.key}')`)}'>`,
    ),
    intervention_dimensions: ivs.map((iv) => iv.embedDim),
    // pyreft's interventions are all "sourceless": pyvene records is_source_constant = True.
    intervention_constant_sources: ivs.map(() => true),
    sorted_keys: keys,
    mode: 'parallel',
  });
  if (folder.positions !== undefined) config.positions = readPositions(folder.positions, 'writePyreftFolder');
  return config;
}

/** JSON as Python's `json.dumps(value, indent=2, sort_keys=True)` prints it (ASCII-only, keys sorted). */
export function pythonJson(value: unknown): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return JSON.stringify(sortKeys(value), null, 2).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The torch state dict pyreft would save for one intervention, in pyreft's order. */
function stateDict(iv: PyreftIntervention, type: PyreftInterventionType, where: string): Array<[string, TorchTensor]> {
  const layout = STATE_LAYOUT[type];
  if (!isCount(iv.embedDim) || !isCount(iv.rank))
    throw new PyreftFolderError(`${where}: embedDim and rank must be positive integers (got ${iv.embedDim}, ${iv.rank})`);
  const known = new Set(layout.map((e) => e.name));
  for (const name of Object.keys(iv.state)) {
    if (!known.has(name) || !name)
      throw new PyreftFolderError(
        `${where}: unexpected tensor '${name}' for a ${type}; it holds ${describeLayout(type, iv.embedDim, iv.rank)}`,
      );
  }
  const out: Array<[string, TorchTensor]> = [];
  for (const e of layout) {
    if (e.buffers) {
      for (const b of BUFFERS) out.push([b, { dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(iv.embedDim)) }]);
      continue;
    }
    const t = iv.state[e.name];
    if (!t) {
      if (e.optional) continue;
      throw new PyreftFolderError(`${where}: missing '${e.name}' for a ${type}; it holds ${describeLayout(type, iv.embedDim, iv.rank)}`);
    }
    const want = expectedShape(e.shape, iv.embedDim, iv.rank);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new PyreftFolderError(
        `${where}: '${e.name}' has shape [${t.shape.join(', ')}], expected [${want.join(', ')}] (embed dim ${iv.embedDim}, rank ${iv.rank})`,
      );
    }
    if (!(t.data instanceof Float32Array) || t.data.length !== want.reduce((a, b) => a * b, 1)) {
      throw new PyreftFolderError(`${where}: '${e.name}' needs a Float32Array of ${want.reduce((a, b) => a * b, 1)} values`);
    }
    out.push([e.name, { dtype: 'F32', shape: want, data: t.data }]);
  }
  return out;
}

/**
 * Write a pyreft folder that `pyreft.ReftModel.load` (pyvene's IntervenableModel.load) reads:
 * the whole folder is built aside and swapped in, so a crash never leaves half of one.
 */
export async function writePyreftFolder(dir: string, folder: PyreftFolder): Promise<void> {
  const config = pyreftConfig(folder);
  // Validate everything before touching the disk.
  const files = folder.interventions.map((iv, i) => {
    const where = `writePyreftFolder: interventions[${i}] ('${iv.key}')`;
    return { name: `intkey_${iv.key}.bin`, tensors: stateDict(iv, pyreftTypeName(iv.type, where), where) };
  });
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileAtomic(path.join(tmp, 'config.json'), pythonJson(config) + '\n');
    for (const f of files) await writeTorchFile(path.join(tmp, f.name), f.tensors);
  });
}
