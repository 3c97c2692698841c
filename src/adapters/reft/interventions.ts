/**
 * The math, parameters, initialisation and pyreft state-dict names of one intervention.
 * Parameters live as tfjs variables named `<pyvene key>.<state name>`:
 *   LoReFT  weight [r, H], bias [r], rotate_layer [H, r] (= Rᵀ)   — pyreft's own state names
 *   DiReFT  learned_source.weight, learned_source.bias, rotate_layer [H, r]
 *   NoReFT  proj_layer.weight [r, H], proj_layer.bias [r] (add_bias), learned_source.weight, learned_source.bias
 * pyreft saves DiReFT through torch's default state dict, where the rotation appears in its
 * parametrised form (`rotate_layer.parametrizations.weight.original` and `.0.base`); the
 * conversion is below.
 */
import { tf, type Tensor } from '../../backend/tf.js';
import { activation } from '../../ops/index.js';
import { AdapterError, type HostTensor } from '../adapter.js';
import type { Rng } from '../random.js';
import { kaimingUniform, linearBias } from '../init.js';
import type { ReftInterventionType } from './config.js';
import { householderOrthogonal, orthogonalCompletion, orthogonalInit } from './orthogonal.js';
import { trainableVariable } from '../variables.js';

/** Local parameter names per intervention type, in pyreft's creation order. */
export const PARAM_NAMES: Record<
  ReftInterventionType,
  { rotate?: string; proj?: string; projBias?: string; weight: string; bias: string }
> = {
  loreft: { rotate: 'rotate_layer', weight: 'weight', bias: 'bias' },
  direft: { rotate: 'rotate_layer', weight: 'learned_source.weight', bias: 'learned_source.bias' },
  noreft: { proj: 'proj_layer.weight', projBias: 'proj_layer.bias', weight: 'learned_source.weight', bias: 'learned_source.bias' },
};

/** pyreft's class names. */
export const PYREFT_CLASS: Record<ReftInterventionType, string> = {
  loreft: 'LoreftIntervention',
  direft: 'DireftIntervention',
  noreft: 'NoreftIntervention',
};

const PARAM_ROTATION = 'rotate_layer.parametrizations.weight.original';
const PARAM_BASE = 'rotate_layer.parametrizations.weight.0.base';

export interface InterventionValues {
  rotate?: Float32Array; // [H, r]
  proj?: Float32Array; // [r, H]
  projBias?: Float32Array; // [r]
  weight: Float32Array; // [r, H]
  bias: Float32Array; // [r]
}

export interface InterventionVars {
  rotate?: tf.Variable;
  proj?: tf.Variable;
  projBias?: tf.Variable;
  weight: tf.Variable;
  bias: tf.Variable;
}

/** Fresh values as pyreft initialises them: orthogonal R, nn.Linear's W and b (and P, c for NoReFT). */
export function initIntervention(type: ReftInterventionType, rng: Rng, hidden: number, rank: number, addBias: boolean): InterventionValues {
  if (type === 'noreft') {
    const proj = kaimingUniform(rng, rank, hidden);
    const projBias = addBias ? linearBias(rng, rank, hidden) : undefined;
    return { proj, projBias, weight: kaimingUniform(rng, rank, hidden), bias: linearBias(rng, rank, hidden) };
  }
  const rotate = orthogonalInit(rng, hidden, rank);
  return { rotate, weight: kaimingUniform(rng, rank, hidden), bias: linearBias(rng, rank, hidden) };
}

export function toVariables(values: InterventionValues, hidden: number, rank: number): InterventionVars {
  const v = trainableVariable;
  return {
    rotate: values.rotate && v(values.rotate, [hidden, rank]),
    proj: values.proj && v(values.proj, [rank, hidden]),
    projBias: values.projBias && v(values.projBias, [rank]),
    weight: v(values.weight, [rank, hidden]),
    bias: v(values.bias, [rank]),
  };
}

/** The edited vectors for h [N, H] (before the position mask and dropout). */
export function interventionForward(type: ReftInterventionType, p: InterventionVars, h: Tensor, actFn: string | null): Tensor {
  return tf.tidy(() => {
    const act = activation(actFn ?? 'linear');
    const source = act(tf.matMul(h, p.weight, false, true).add(p.bias)); // [N, r]
    switch (type) {
      case 'loreft':
        return h.add(tf.matMul(source.sub(tf.matMul(h, p.rotate!)), p.rotate!, false, true));
      case 'direft':
        return h.add(tf.matMul(source, p.rotate!, false, true));
      case 'noreft': {
        let projected = tf.matMul(h, p.proj!, false, true);
        if (p.projBias) projected = projected.add(p.projBias);
        return h.add(tf.matMul(source.sub(projected), p.proj!));
      }
    }
  });
}

/** The state dict pyreft's `torch.save(intervention.state_dict())` holds, in its order. */
export function toPyreftState(
  type: ReftInterventionType,
  values: InterventionValues,
  hidden: number,
  rank: number,
): Record<string, HostTensor> {
  const w = { shape: [rank, hidden], data: values.weight };
  const b = { shape: [rank], data: values.bias };
  switch (type) {
    case 'loreft':
      return { weight: w, bias: b, rotate_layer: { shape: [hidden, rank], data: values.rotate! } };
    case 'direft': {
      // original = −I with base = an orthogonal completion of Rᵀ: exactly how torch stores a
      // freshly parametrised layer, and the parametrisation maps it back to Rᵀ.
      const negId = new Float32Array(hidden * rank);
      for (let j = 0; j < rank; j++) negId[j * rank + j] = -1;
      const base = Float32Array.from(orthogonalCompletion(values.rotate!, hidden, rank));
      // Its first columns are Rᵀ up to rounding; store Rᵀ itself so that loading gives back the same bits.
      for (let i = 0; i < hidden; i++) for (let j = 0; j < rank; j++) base[i * hidden + j] = values.rotate![i * rank + j]!;
      return {
        [PARAM_ROTATION]: { shape: [hidden, rank], data: negId },
        [PARAM_BASE]: { shape: [hidden, hidden], data: base },
        'learned_source.weight': w,
        'learned_source.bias': b,
      };
    }
    case 'noreft': {
      const out: Record<string, HostTensor> = { 'proj_layer.weight': { shape: [rank, hidden], data: values.proj! } };
      if (values.projBias) out['proj_layer.bias'] = { shape: [rank], data: values.projBias };
      out['learned_source.weight'] = w;
      out['learned_source.bias'] = b;
      return out;
    }
  }
}

/**
 * Values from a pyreft state dict, checked against the model's hidden size. `where` names
 * the file in errors. Returns the rank the tensors have.
 */
export function fromPyreftState(
  type: ReftInterventionType,
  state: Record<string, HostTensor>,
  hidden: number,
  where: string,
): { values: InterventionValues; rank: number } {
  const used = new Set<string>();
  const get = (name: string, optional = false): HostTensor | undefined => {
    const t = state[name];
    if (!t && !optional) throw new AdapterError(`${where}: missing '${name}' (a ${PYREFT_CLASS[type]} holds ${expectedNames(type)})`);
    if (t) used.add(name);
    return t;
  };
  const check = (name: string, t: HostTensor, shape: number[]): Float32Array => {
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new AdapterError(
        `${where}: '${name}' has shape [${t.shape.join(', ')}] but this model (hidden size ${hidden}) needs [${shape.join(', ')}]`,
      );
    }
    return t.data;
  };
  const names = PARAM_NAMES[type];
  const w = get(names.weight)!;
  if (w.shape.length !== 2) throw new AdapterError(`${where}: '${names.weight}' must be 2-D [rank, hidden], got [${w.shape.join(', ')}]`);
  const rank = w.shape[0]!;
  const values: InterventionValues = {
    weight: check(names.weight, w, [rank, hidden]),
    bias: check(names.bias, get(names.bias)!, [rank]),
  };
  if (type === 'noreft') {
    values.proj = check(names.proj!, get(names.proj!)!, [rank, hidden]);
    const pb = get(names.projBias!, true);
    if (pb) values.projBias = check(names.projBias!, pb, [rank]);
  } else if (type === 'loreft' || state[names.rotate!]) {
    values.rotate = check(names.rotate!, get(names.rotate!)!, [hidden, rank]);
  } else {
    const original = check(PARAM_ROTATION, get(PARAM_ROTATION)!, [hidden, rank]);
    const base = get(PARAM_BASE, true);
    values.rotate = Float32Array.from(householderOrthogonal(original, hidden, rank, base && check(PARAM_BASE, base, [hidden, hidden])));
  }
  const extra = Object.keys(state).filter((k) => !used.has(k));
  if (extra.length)
    throw new AdapterError(`${where}: unexpected '${extra[0]}' in a ${PYREFT_CLASS[type]} (it holds ${expectedNames(type)})`);
  return { values, rank };
}

function expectedNames(type: ReftInterventionType): string {
  if (type === 'direft') return `learned_source.weight, learned_source.bias and ${PARAM_ROTATION} (+ ${PARAM_BASE})`;
  const n = PARAM_NAMES[type];
  return [n.proj, n.projBias && `${n.projBias} (optional)`, n.weight, n.bias, n.rotate].filter(Boolean).join(', ');
}
