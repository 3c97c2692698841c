/**
 * ReFT against pyreft itself: the fixture's LoReFT interventions, loaded into tiny-llama and
 * applied at meta.json's positions, reproduce pyreft's logits and loss.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../../src/backend/select.js';
import { loadBaseModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/ops/index.js';
import { generate } from '../../src/model/generate.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readTorchFile } from '../../src/io/torchSave.js';
import { toFloat32 } from '../../src/io/dtypes.js';
import { ReftAdapter, type PyreftIntervention } from '../../src/adapters/reft/adapter.js';
import { fixture, maxRelError, tensorRows } from '../helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** The fixture folder's interventions, read with the torch-file reader. */
async function fixtureRecords(dir: string): Promise<PyreftIntervention[]> {
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  return Promise.all(
    (cfg.sorted_keys as string[]).map(async (key, i) => {
      const state: PyreftIntervention['state'] = {};
      for (const [name, t] of await readTorchFile(path.join(dir, `intkey_${key}.bin`)))
        state[name] = { shape: t.shape, data: toFloat32(t.dtype, t.data) };
      const rep = cfg.representations[i];
      return {
        key,
        layer: rep[0],
        component: rep[1],
        rank: rep[4],
        type: cfg.intervention_types[i],
        embedDim: cfg.intervention_dimensions[i],
        state,
      };
    }),
  );
}

describe('pyreft LoReFT fixture on tiny-llama', () => {
  it('reproduces logits and loss within 1e-4 at meta.json positions', async () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const meta = JSON.parse(readFileSync(fixture('pyreft-loreft-llama/meta.json'), 'utf8'));
    const adapter = ReftAdapter.fromPyreft(model, await fixtureRecords(fixture('pyreft-loreft-llama/reft')), 'reft');
    expect(adapter.settings).toMatchObject({ intervention: 'loreft', rank: meta.rank, groups: 1 });
    expect(adapter.interventions.map((i) => i.layer)).toEqual(meta.layers);
    const ref = SafetensorsFile.open(fixture('pyreft-loreft-llama/reference.safetensors'));
    const inputIds = tensorRows(ref.read('input_ids'));
    const attentionMask = tensorRows(ref.read('attention_mask'));
    const positions = inputIds.map(() => meta.positions as number[]);
    const out = model.run({ inputIds, attentionMask }, { hooks: adapter, ctx: { training: false, positions } });
    expect(maxRelError(out.logits.dataSync(), ref.readFloat32('logits').data)).toBeLessThan(1e-4);
    // Labels are the input ids, ignored (-100) where the attention mask is 0 (row 1 is all padding).
    const labels = inputIds.map((row, b) => row.map((id, t) => (attentionMask[b]![t] ? id : -100)));
    const loss = causalLmLoss(out.logits, labels);
    expect(maxRelError(loss.dataSync(), ref.readFloat32('loss').data)).toBeLessThan(1e-4);
    // Without the interventions the logits are far from pyreft's: the test can fail.
    const plain = model.run({ inputIds, attentionMask });
    expect(maxRelError(plain.logits.dataSync(), ref.readFloat32('logits').data)).toBeGreaterThan(1e-2);
    ref.close();
    adapter.dispose();
    model.dispose();
  });

  it('generates with the KV cache as without it (positions on the prompt only)', async () => {
    const model = loadBaseModel(fixture('tiny-llama'));
    const adapter = ReftAdapter.fromPyreft(model, await fixtureRecords(fixture('pyreft-loreft-llama/reft')), 'reft');
    const prompt = [250, 244, 118, 204, 370, 10, 92, 385];
    const opts = { maxNewTokens: 6, eosTokenIds: [], hooks: adapter, positions: [0, 1, 6, 7] };
    const cached = generate(model, prompt, opts);
    expect(generate(model, prompt, { ...opts, useCache: false })).toEqual(cached);
    adapter.dispose();
    model.dispose();
  });
});
