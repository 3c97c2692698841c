/**
 * A ReFT adapter: interventions on the residual stream leaving chosen decoder layers,
 * applied by the `blockOutput` hook at each example's positions, named as pyvene names
 * them (`layer_<L>_comp_block_output_unit_pos_nunit_1#<n>`), created with pyreft's
 * initialisation from a seed, or loaded from a pyreft folder's state dicts.
 */
import { tf, type Tensor } from '../../backend/tf.js';
import type { ForwardContext } from '../../model/hooks.js';
import type { PyreftIntervention } from '../../io/pyreftFolder.js';
import { type Adapter, type AdapterHost, AdapterError } from '../adapter.js';
import { Rng } from '../random.js';
import { dropoutSeed } from '../dropoutSeeds.js';
import { philoxDropout } from '../philoxDropout.js';
import { dropout } from '../../ops/dropout.js';
import { type ReftConfig, type ReftInterventionType, parsePositions, positionGroups } from './config.js';
import {
  type InterventionValues,
  type InterventionVars,
  PARAM_NAMES,
  PYREFT_CLASS,
  fromPyreftState,
  initIntervention,
  interventionForward,
  toPyreftState,
  toVariables,
} from './interventions.js';
import { dependentColumnMessage, orthonormalizeColumns } from './orthogonal.js';
import { activeDevice } from '../../backend/device.js';
import { positionRows } from './positions.js';
import { RowSelectors, scatterAddRows } from './scatterRows.js';

/** One intervention as a pyreft folder holds it (src/io/pyreftFolder.ts reads and writes these). */
export type { PyreftIntervention };

/** What the adapter needs besides its parameters (a pyreft folder does not store dropout or act_fn). */
export interface ReftSettings {
  intervention: ReftInterventionType;
  rank: number;
  hidden: number;
  /** 1: one intervention per layer for all positions; 2: first/last positions separately. */
  groups: 1 | 2;
  dropout: number;
  act_fn: string | null;
  add_bias: boolean;
  /**
   * The prompt positions it was trained on, in pyreft's notation ("f1+l1" …); undefined for a
   * folder pyreft wrote (pyvene does not save them) unless the caller supplies them.
   */
  positions?: string;
}

export interface Intervention {
  key: string;
  layer: number;
  group: number;
  vars: InterventionVars;
}

export function interventionKey(layer: number, group: number): string {
  return `layer_${layer}_comp_block_output_unit_pos_nunit_1#${group}`;
}

const KEY_RE = /^layer_(\d+)_comp_block_output_unit_pos_nunit_1#(\d+)$/;
const DROPOUT_STREAM = 0xd50;

export class ReftAdapter implements Adapter {
  readonly kind = 'reft' as const;
  readonly variables = new Map<string, tf.Variable>();
  readonly interventions: Intervention[];
  private readonly dropoutRng: Rng;
  /** Row selectors of the current forward's positions, per group: every layer (and a checkpointed recomputation) reuses them. */
  private readonly selectors = new RowSelectors();

  private constructor(
    readonly settings: ReftSettings,
    interventions: Intervention[],
    seed: number,
  ) {
    this.interventions = interventions;
    const names = PARAM_NAMES[settings.intervention];
    for (const iv of interventions) {
      const add = (local: string | undefined, v: tf.Variable | undefined) => {
        if (local && v) this.variables.set(`${iv.key}.${local}`, v);
      };
      add(names.rotate, iv.vars.rotate);
      add(names.proj, iv.vars.proj);
      add(names.projBias, iv.vars.projBias);
      add(names.weight, iv.vars.weight);
      add(names.bias, iv.vars.bias);
    }
    this.dropoutRng = new Rng(seed ^ DROPOUT_STREAM);
  }

  /** Fresh interventions, initialised as pyreft does, from `seed`. */
  static create(host: AdapterHost, config: ReftConfig, seed: number): ReftAdapter {
    const { hiddenSize: hidden, numLayers } = host.spec;
    if (config.rank > hidden) throw new AdapterError(`ReFT rank ${config.rank} exceeds the model's hidden size ${hidden}`);
    const layers = config.layers === 'all' ? Array.from({ length: numLayers }, (_, i) => i) : config.layers;
    const badLayer = layers.find((l) => l >= numLayers);
    if (badLayer !== undefined) throw new AdapterError(`ReFT layer ${badLayer} does not exist: this model has layers 0..${numLayers - 1}`);
    const groups = positionGroups(config);
    const rng = new Rng(seed);
    const interventions: Intervention[] = [];
    for (let g = 0; g < groups; g++) {
      for (const layer of layers) {
        const values = initIntervention(config.intervention, rng, hidden, config.rank, config.add_bias);
        interventions.push({ key: interventionKey(layer, g), layer, group: g, vars: toVariables(values, hidden, config.rank) });
      }
    }
    const settings: ReftSettings = {
      intervention: config.intervention,
      rank: config.rank,
      hidden,
      groups,
      dropout: config.dropout,
      act_fn: config.act_fn,
      add_bias: config.add_bias,
      positions: config.positions,
    };
    return new ReftAdapter(settings, interventions, seed);
  }

  /**
   * Interventions from a pyreft folder's records. `where` names the folder in errors;
   * `options` supplies what pyreft does not save (dropout, act_fn, and positions when the
   * folder does not record them).
   */
  static fromPyreft(
    host: AdapterHost,
    records: PyreftIntervention[],
    where: string,
    options: { dropout?: number; act_fn?: string | null; seed?: number; positions?: string } = {},
  ): ReftAdapter {
    if (records.length === 0) throw new AdapterError(`${where}: holds no intervention`);
    const { hiddenSize: hidden, numLayers } = host.spec;
    const types = records.map((r) => interventionType(r.type, `${where}: intervention '${r.key}'`));
    const type = types[0]!;
    const mixed = types.findIndex((t) => t !== type);
    if (mixed >= 0)
      throw new AdapterError(
        `${where}: mixes ${PYREFT_CLASS[type]} and ${PYREFT_CLASS[types[mixed]!]}; typetune loads one intervention type per adapter`,
      );
    const interventions: Intervention[] = [];
    let rank = -1;
    let addBias = false;
    try {
      for (const r of records) {
        const at = `${where}: intervention '${r.key}'`;
        const m = KEY_RE.exec(r.key);
        if (r.component !== 'block_output' || !m) {
          throw new AdapterError(
            `${at}: component '${r.component}' is not supported; typetune intervenes on 'block_output' (keys layer_<L>_comp_block_output_unit_pos_nunit_1#<n>)`,
          );
        }
        const layer = Number(m[1]);
        const group = Number(m[2]);
        if (layer !== r.layer) throw new AdapterError(`${at}: key names layer ${layer} but its representation says layer ${r.layer}`);
        if (layer >= numLayers) throw new AdapterError(`${at}: layer ${layer} does not exist: this model has layers 0..${numLayers - 1}`);
        if (group > 1) throw new AdapterError(`${at}: more than two interventions on one layer are not supported`);
        if (r.embedDim !== hidden)
          throw new AdapterError(`${at}: acts on hidden size ${r.embedDim} but this model's hidden size is ${hidden}`);
        const { values, rank: rk } = fromPyreftState(type, r.state, hidden, at);
        if (rank >= 0 && rk !== rank) throw new AdapterError(`${at}: rank ${rk} differs from the other interventions' ${rank}`);
        rank = rk;
        addBias ||= values.projBias !== undefined;
        interventions.push({ key: r.key, layer, group, vars: toVariables(values, hidden, rk) });
      }
      const groups = interventions.some((i) => i.group === 1) ? 2 : 1;
      if (groups === 2) {
        const l0 = interventions
          .filter((i) => i.group === 0)
          .map((i) => i.layer)
          .sort()
          .join();
        const l1 = interventions
          .filter((i) => i.group === 1)
          .map((i) => i.layer)
          .sort()
          .join();
        if (l0 !== l1)
          throw new AdapterError(
            `${where}: first-position interventions (#0) are on layers [${l0}] but last-position ones (#1) on [${l1}]`,
          );
      }
      if (options.positions !== undefined) checkPositionsFit(options.positions, groups, where);
      const settings: ReftSettings = {
        intervention: type,
        rank,
        hidden,
        groups,
        dropout: options.dropout ?? 0,
        act_fn: options.act_fn ?? null,
        add_bias: addBias,
        positions: options.positions,
      };
      return new ReftAdapter(settings, interventions, options.seed ?? 0);
    } catch (err) {
      for (const iv of interventions) disposeVars(iv.vars);
      throw err;
    }
  }

  blockOutput(layer: number, h: Tensor, ctx: ForwardContext): Tensor {
    const here = this.interventions.filter((i) => i.layer === layer);
    if (here.length === 0) return h;
    // No positions: no intervention — how generation continues past the prompt (pyreft
    // intervenes on prompt positions only). Training without positions is a mistake.
    if (!ctx.positions && !ctx.training) return h;
    const [batch, seq, hidden] = h.shape as [number, number, number];
    let out = h;
    for (const iv of here) {
      const prev = out;
      const site = this.interventions.indexOf(iv);
      out = tf.tidy(() => {
        // Only the intervened rows are edited (pyvene's gather → intervene → scatter): nothing of the
        // full sequence's size is kept for the backward pass but the block output itself.
        const select = this.selectors.get(
          ctx.positions,
          iv.group,
          () => positionRows(ctx.positions, batch, seq, iv.group, this.settings.groups, layer),
          batch * seq,
        );
        if (!select) return prev;
        const selected = tf.matMul(select.rows, prev.reshape([-1, hidden]), true, false);
        let edited = interventionForward(this.settings.intervention, iv.vars, selected, this.settings.act_fn);
        if (ctx.training && this.settings.dropout > 0) {
          // pyreft drops the intervention's output, the whole edited vector of each intervened row. The mask
          // is Philox's for this site's seed in this forward (../dropoutSeeds.ts), as LoRA's: a resumed run
          // and a checkpointed block's recomputation redraw it, and on cuda the op regenerates it in the
          // backward, never stored.
          const [rate, seed, kept] = [this.settings.dropout, dropoutSeed(ctx, site, this.dropoutRng), edited];
          edited = dropout(kept, rate, seed, () => philoxDropout(kept, rate, seed));
        }
        return scatterAddRows(prev, select, edited.sub(selected));
      });
    }
    return out;
  }

  /** The trainable tensors of one layer's interventions (for activation checkpointing). */
  layerVariables(layer: number): tf.Variable[] {
    return this.interventions
      .filter((i) => i.layer === layer)
      .flatMap((i) => Object.values(i.vars).filter((v): v is tf.Variable => v !== undefined));
  }

  /**
   * QR retraction: R's rows (rotate_layer's columns) back to orthonormal after an optimiser step —
   * on the device in one call where it can (each rotation once: shared weights serve several
   * interventions), else each rotation read back, retracted on the host and written.
   */
  afterStep(): void {
    if (this.settings.intervention === 'noreft') return;
    const { hidden, rank } = this.settings;
    const device = activeDevice();
    if (device.orthonormalizeColumns) {
      const rotations = [...new Set(this.interventions.map((iv) => iv.vars.rotate!))];
      const dependent = device.orthonormalizeColumns(rotations, hidden, rank).find((j) => j >= 0);
      if (dependent !== undefined) throw new Error(dependentColumnMessage(dependent, hidden, rank));
      return;
    }
    for (const iv of this.interventions) {
      const r = iv.vars.rotate!;
      const q = orthonormalizeColumns(r.dataSync() as Float32Array, hidden, rank);
      const t = tf.tensor2d(Float32Array.from(q), [hidden, rank]);
      r.assign(t);
      t.dispose();
    }
  }

  /** The interventions as pyreft folder records, in pyvene's key order. */
  toPyreft(): PyreftIntervention[] {
    const { intervention, hidden, rank } = this.settings;
    return this.interventions.map((iv) => ({
      key: iv.key,
      layer: iv.layer,
      component: 'block_output',
      rank,
      type: PYREFT_CLASS[intervention],
      embedDim: hidden,
      state: toPyreftState(intervention, valuesOf(iv.vars), hidden, rank),
    }));
  }

  /**
   * The stream of forwards without a fixed per-forward seed (../dropoutSeeds.ts); the Trainer
   * fixes one every step, so a run's masks come from its seed and step alone. A checkpoint
   * written while ReFT dropped through tf.dropout still loads and restores this state as before;
   * the steps after it draw Philox masks, not the tfjs masks the older version would have drawn.
   */
  getRngState(): number[] {
    return this.dropoutRng.getState();
  }

  setRngState(state: readonly number[]): void {
    this.dropoutRng.setState(state);
  }

  dispose(): void {
    this.selectors.clear();
    for (const iv of this.interventions) disposeVars(iv.vars);
    this.variables.clear();
  }
}

/**
 * Two interventions per layer (#0 for the first positions, #1 for the last) need positions
 * with both sides; one per layer serves any notation (shared weights).
 */
function checkPositionsFit(positions: string, groups: 1 | 2, where: string): void {
  const { first, last } = parsePositions(positions, `${where}: positions`);
  if (groups === 2 && (first === 0 || last === 0)) {
    throw new AdapterError(
      `${where}: positions "${positions}" name only ${first ? 'first' : 'last'} tokens, but the folder holds separate first- and last-position interventions (#0 and #1 per layer); use fN+lM, as it was trained`,
    );
  }
}

/** `LoreftIntervention`, `<class 'pyreft.interventions.LoreftIntervention'>` → 'loreft'. */
export function interventionType(type: string, where: string): ReftInterventionType {
  const name = /([A-Za-z_]+Intervention)'?>?\s*$/.exec(type)?.[1] ?? type;
  for (const [t, cls] of Object.entries(PYREFT_CLASS)) if (cls === name) return t as ReftInterventionType;
  throw new AdapterError(
    `${where}: intervention type ${JSON.stringify(type)} is not supported; typetune runs ${Object.values(PYREFT_CLASS).join(', ')}`,
  );
}

function valuesOf(vars: InterventionVars): InterventionValues {
  const read = (v: tf.Variable | undefined) => (v ? Float32Array.from(v.dataSync() as Float32Array) : undefined);
  return {
    rotate: read(vars.rotate),
    proj: read(vars.proj),
    projBias: read(vars.projBias),
    weight: read(vars.weight)!,
    bias: read(vars.bias)!,
  };
}

function disposeVars(vars: InterventionVars): void {
  for (const v of Object.values(vars)) v?.dispose();
}
