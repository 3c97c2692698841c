/**
 * ReFT (LoReFT, DiReFT, NoReFT) as an adapter kind: pyreft's names in a recipe, one
 * adapter.type per intervention, a pyreft folder as its export.
 */
import { writePyreftFolder } from '../../io/pyreftFolder.js';
import { ACTIVATION_NAMES } from '../../ops/index.js';
import { bool, dropoutRate, either, enumOf, layerIndices, literal, nullable, positiveInt } from '../../util/checks.js';
import type { AdapterKind } from '../kind.js';
import { ReftAdapter } from './adapter.js';
import { REFT_DEFAULTS, REFT_TYPES, parsePositions, parseReftConfig, positionGroups } from './config.js';
import { positionsCheck } from './positionsCheck.js';

export const reftKind: AdapterKind<ReftAdapter> = {
  name: 'reft',
  title: 'ReFT',
  types: REFT_TYPES,
  doc: 'What is trained: ReFT interventions, with pyreft’s names.',
  defaults: REFT_DEFAULTS,
  aliases: { low_rank_dimension: 'rank', intervention_layers: 'layers', position: 'positions' },
  fields: {
    rank: { check: positiveInt, doc: 'rank of the subspace the intervention edits (pyreft’s low_rank_dimension)' },
    layers: {
      check: either('a list of layer indices or "all"', layerIndices, literal('all', '"all"')),
      doc: 'decoder layers to intervene on: a list, or "all"',
    },
    positions: { check: positionsCheck, doc: 'prompt tokens to intervene on: "f7+l7" = first 7 and last 7, "f3", "l1"' },
    share_weights: { check: bool, doc: 'first and last positions share one intervention (else one each)' },
    dropout: { check: dropoutRate, doc: 'dropout inside the intervention during training' },
    act_fn: {
      check: nullable(enumOf(ACTIVATION_NAMES), `one of ${ACTIVATION_NAMES.join(' | ')}`),
      doc: 'activation on the learned source Wh + b; null = identity',
    },
    component: {
      check: literal('block_output', '"block_output" (the residual stream leaving a layer)'),
      doc: 'where in the layer: "block_output" (the residual stream leaving it)',
    },
    add_bias: { check: bool, doc: 'NoReFT only: a bias on its projection' },
  },
  crossCheck: (s) =>
    s.add_bias === true && s.type !== 'noreft'
      ? [['add_bias', `add_bias applies to noreft only (loreft and direft have no bias of their own); adapter.type is ${s.type}`]]
      : [],
  exports: ['pyreft'],
  concatenatedPacking: false,
  positions: (s) => ({ positions: String(s.positions), shareWeights: s.share_weights === true }),
  create: (host, section, seed, where) => ReftAdapter.create(host, parseReftConfig(section, where), seed),
  save: (adapter, dir) => writePyreftFolder(dir, { interventions: adapter.toPyreft(), positions: adapter.settings.positions }),
  parameterCount: (model, section) => {
    const config = parseReftConfig(section, 'adapter');
    const layers = config.layers === 'all' ? model.numLayers : config.layers.length;
    return layers * positionGroups(config) * (2 * config.rank * model.hiddenSize + config.rank);
  },
  shapeConstants: (section) => {
    const config = parseReftConfig(section, 'adapter');
    const { first, last } = parsePositions(config.positions);
    return { constants: [config.rank, first, last, first + last], minSeq: first + last + 2 };
  },
};
