import { describe, it, expect } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  readPyreftFolder,
  writePyreftFolder,
  pyreftConfig,
  pyveneKeys,
  pythonJson,
  type PyreftIntervention,
} from '../../src/io/pyreftFolder.js';
import { readTorchFile, writeTorchFile } from '../../src/io/torchSave.js';
import { bf16ToF32 } from '../../src/io/dtypes.js';
import { fixture } from '../helpers.js';

const reftDir = fixture('pyreft-loreft-llama/reft');
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'typetune-pyreft-'));
const filled = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

function copyFixture(): string {
  const dir = path.join(tmp(), 'reft');
  cpSync(reftDir, dir, { recursive: true });
  return dir;
}

describe('readPyreftFolder', () => {
  it('reads the pyreft fixture: two LoReFT interventions with their three tensors', async () => {
    const { interventions, config } = await readPyreftFolder(reftDir);
    expect(interventions.map((iv) => iv.key)).toEqual([
      'layer_0_comp_block_output_unit_pos_nunit_1#0',
      'layer_2_comp_block_output_unit_pos_nunit_1#0',
    ]);
    for (const [i, iv] of interventions.entries()) {
      expect(iv).toMatchObject({ layer: [0, 2][i], component: 'block_output', rank: 4, type: 'LoreftIntervention', embedDim: 64 });
      expect(Object.keys(iv.state)).toEqual(['weight', 'bias', 'rotate_layer']);
      expect(iv.state.weight!.shape).toEqual([4, 64]);
      expect(iv.state.bias!.shape).toEqual([4]);
      expect(iv.state.rotate_layer!.shape).toEqual([64, 4]);
      const raw = await readTorchFile(path.join(reftDir, `intkey_${iv.key}.bin`));
      expect(iv.state.rotate_layer!.data).toEqual(raw.get('rotate_layer')!.data);
      expect(iv.unit).toBeUndefined();
      expect(iv.representationExtras).toBeUndefined();
    }
    expect(config.transformers_version).toBe('5.17.0');
  });
});

describe('a DiReFT folder around a state dict torch wrote (test/io/data/torch-direft-state.bin)', () => {
  const key = 'layer_1_comp_block_output_unit_pos_nunit_1#0';
  function direftFolder(embedDim: number): string {
    const dir = path.join(tmp(), 'direft');
    mkdirSync(dir);
    const config = {
      intervention_constant_sources: [true],
      intervention_dimensions: [embedDim],
      intervention_types: ["<class 'pyreft.interventions.DireftIntervention'>"],
      mode: 'parallel',
      representations: [[1, 'block_output', 'pos', 1, 2, null, null, null, null, null, null, null, null, null]],
      sorted_keys: [key],
    };
    writeFileSync(path.join(dir, 'config.json'), pythonJson(config) + '\n');
    cpSync(
      path.join(path.dirname(new URL(import.meta.url).pathname), 'data', 'torch-direft-state.bin'),
      path.join(dir, `intkey_${key}.bin`),
    );
    return dir;
  }

  it('reads it: buffers checked and dropped, bf16 learned_source converted to f32, strided base gathered', async () => {
    const { interventions } = await readPyreftFolder(direftFolder(8));
    const [iv] = interventions;
    expect(iv).toMatchObject({ key, layer: 1, rank: 2, embedDim: 8, type: 'DireftIntervention' });
    expect(Object.keys(iv!.state)).toEqual([
      'rotate_layer.parametrizations.weight.original',
      'rotate_layer.parametrizations.weight.0.base',
      'learned_source.weight',
      'learned_source.bias',
    ]);
    const raw = await readTorchFile(path.join(direftFolder(8), `intkey_${key}.bin`));
    const bits = raw.get('learned_source.weight')!.data as Uint16Array;
    expect(iv!.state['learned_source.weight']!.data).toEqual(Float32Array.from(bits, (b) => bf16ToF32(b)));
  });

  it('names a pyvene buffer that disagrees with intervention_dimensions', async () => {
    await expect(readPyreftFolder(direftFolder(16))).rejects.toThrow(
      /buffer 'embed_dim' is 8, expected the scalar 16 \(intervention_dimensions\)/,
    );
  });
});

describe('writePyreftFolder', () => {
  it('writes the fixture back byte for byte: config.json and both .bin files', async () => {
    const read = await readPyreftFolder(reftDir);
    const out = path.join(tmp(), 'reft');
    await writePyreftFolder(out, read);
    expect(readdirSync(out).sort()).toEqual(readdirSync(reftDir).sort());
    for (const f of readdirSync(reftDir)) expect(readFileSync(path.join(out, f)).equals(readFileSync(path.join(reftDir, f))), f).toBe(true);
  });

  it('builds the same config.json as pyvene from the interventions alone (transformers_version aside)', async () => {
    const { interventions } = await readPyreftFolder(reftDir);
    const ours = pyreftConfig({ interventions });
    const theirs = JSON.parse(readFileSync(path.join(reftDir, 'config.json'), 'utf8'));
    delete theirs.transformers_version;
    expect(ours).toEqual(theirs);
    expect(pyreftConfig({ interventions, config: { transformers_version: '5.17.0' } })).toEqual(
      JSON.parse(readFileSync(path.join(reftDir, 'config.json'), 'utf8')),
    );
  });

  it('round-trips every pyreft intervention type exactly, with pyvene buffers where pyreft has them', async () => {
    const H = 6;
    const r = 2;
    const t = (shape: number[], seed: number) => ({
      shape,
      data: filled(
        shape.reduce((a, b) => a * b, 1),
        (i) => Math.sin(seed * 100 + i),
      ),
    });
    const interventions: PyreftIntervention[] = [
      {
        key: '',
        layer: 1,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: 'LoreftIntervention',
        state: { weight: t([r, H], 1), bias: t([r], 2), rotate_layer: t([H, r], 3) },
      },
      {
        key: '',
        layer: 1,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: "<class 'pyreft.interventions.DireftIntervention'>",
        state: {
          'rotate_layer.parametrizations.weight.original': t([H, r], 4),
          'rotate_layer.parametrizations.weight.0.base': t([H, H], 5),
          'learned_source.weight': t([r, H], 6),
          'learned_source.bias': t([r], 7),
        },
      },
      {
        key: '',
        layer: 3,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: 'NoreftIntervention',
        state: { 'proj_layer.weight': t([r, H], 8), 'learned_source.weight': t([r, H], 9), 'learned_source.bias': t([r], 10) },
      },
      {
        key: '',
        layer: 3,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: 'NodireftIntervention',
        state: {
          'proj_layer.weight': t([r, H], 11),
          'proj_layer.bias': t([r], 12),
          'learned_source.weight': t([r, H], 13),
          'learned_source.bias': t([r], 14),
        },
      },
      {
        key: '',
        layer: 4,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: 'ConsreftIntervention',
        state: {
          learned_source: t([r], 15),
          'rotate_layer.parametrizations.weight.original': t([H, r], 16),
          'rotate_layer.parametrizations.weight.0.base': t([H, H], 17),
        },
      },
      {
        key: '',
        layer: 5,
        component: 'block_output',
        rank: r,
        embedDim: H,
        type: 'LobireftIntervention',
        state: {
          learned_source: t([r], 18),
          'rotate_layer.parametrizations.weight.original': t([H, r], 19),
          'rotate_layer.parametrizations.weight.0.base': t([H, H], 20),
        },
      },
    ];
    const keys = pyveneKeys(interventions);
    expect(keys.slice(0, 4)).toEqual([
      'layer_1_comp_block_output_unit_pos_nunit_1#0',
      'layer_1_comp_block_output_unit_pos_nunit_1#1',
      'layer_3_comp_block_output_unit_pos_nunit_1#0',
      'layer_3_comp_block_output_unit_pos_nunit_1#1',
    ]);
    interventions.forEach((iv, i) => (iv.key = keys[i]!));
    const dir = path.join(tmp(), 'out');
    await writePyreftFolder(dir, { interventions });
    const back = await readPyreftFolder(dir);
    expect(back.interventions.map((iv) => iv.type)).toEqual([
      'LoreftIntervention',
      'DireftIntervention',
      'NoreftIntervention',
      'NodireftIntervention',
      'ConsreftIntervention',
      'LobireftIntervention',
    ]);
    back.interventions.forEach((iv, i) => {
      expect(iv.state).toEqual(interventions[i]!.state);
      expect(iv).toMatchObject({ key: keys[i], layer: interventions[i]!.layer, rank: r, embedDim: H });
    });
    // pyreft's torch state_dict order, with pyvene's int64 buffers where nn.Module puts them.
    const direft = await readTorchFile(path.join(dir, `intkey_${keys[1]}.bin`));
    expect([...direft.keys()]).toEqual([
      'embed_dim',
      'interchange_dim',
      'rotate_layer.parametrizations.weight.original',
      'rotate_layer.parametrizations.weight.0.base',
      'learned_source.weight',
      'learned_source.bias',
    ]);
    expect(direft.get('embed_dim')).toEqual({ dtype: 'I64', shape: [], data: BigInt64Array.of(6n) });
    const consreft = await readTorchFile(path.join(dir, `intkey_${keys[4]}.bin`));
    expect([...consreft.keys()].slice(0, 3)).toEqual(['learned_source', 'embed_dim', 'interchange_dim']);
    const loreft = await readTorchFile(path.join(dir, `intkey_${keys[0]}.bin`));
    expect([...loreft.keys()]).toEqual(['weight', 'bias', 'rotate_layer']);
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config.intervention_types[1]).toBe("<class 'pyreft.interventions.DireftIntervention'>");
    expect(config.transformers_version).toBeUndefined();
  });

  it('replaces an existing folder whole, and leaves it untouched when the input is bad', async () => {
    const dir = copyFixture();
    writeFileSync(path.join(dir, 'stale.txt'), 'old');
    const read = await readPyreftFolder(dir);
    const bad = {
      interventions: [
        { ...read.interventions[0]!, state: { ...read.interventions[0]!.state, bias: { shape: [5], data: new Float32Array(5) } } },
      ],
    };
    await expect(writePyreftFolder(dir, bad)).rejects.toThrow(/'bias' has shape \[5\], expected \[4\]/);
    expect(existsSync(path.join(dir, 'stale.txt'))).toBe(true);
    await writePyreftFolder(dir, { interventions: read.interventions.slice(0, 1) });
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'intkey_layer_0_comp_block_output_unit_pos_nunit_1#0.bin']);
  });

  it('prints JSON as Python does (sorted keys at every depth, ASCII escapes)', () => {
    expect(pythonJson({ b: 1, a: { d: [], c: 'é' } })).toBe('{\n  "a": {\n    "c": "\\u00e9",\n    "d": []\n  },\n  "b": 1\n}');
  });
});

describe('bad pyreft folders and inputs', () => {
  it('names a folder without config.json', async () => {
    await expect(readPyreftFolder(tmp())).rejects.toThrow(/no config\.json — not a pyreft folder/);
  });

  it('names an intervention whose .bin is missing', async () => {
    const dir = copyFixture();
    rmSync(path.join(dir, 'intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.bin'));
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      "intervention 'layer_2_comp_block_output_unit_pos_nunit_1#0' (sorted_keys[1]) has no intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.bin",
    );
  });

  it('lists the supported types for an unknown one (reading and writing)', async () => {
    const dir = copyFixture();
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    config.intervention_types[1] = "<class 'mypkg.MyIntervention'>";
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      /intervention_types\[1\]: unknown intervention type "<class 'mypkg\.MyIntervention'>"; supported: LoreftIntervention, DireftIntervention, NoreftIntervention, NodireftIntervention, ConsreftIntervention, LobireftIntervention/,
    );
    const { interventions } = await readPyreftFolder(reftDir);
    await expect(
      writePyreftFolder(path.join(tmp(), 'x'), { interventions: [{ ...interventions[0]!, type: 'LoraIntervention' }] }),
    ).rejects.toThrow(/unknown intervention type "LoraIntervention"; supported: LoreftIntervention/);
  });

  it('names a tensor of the wrong shape, and a missing or unexpected tensor, with the file', async () => {
    const dir = copyFixture();
    const file = path.join(dir, 'intkey_layer_0_comp_block_output_unit_pos_nunit_1#0.bin');
    const t = await readTorchFile(file);
    await writeTorchFile(file, [
      ['weight', t.get('weight')!],
      ['bias', t.get('bias')!],
      ['rotate_layer', { dtype: 'F32', shape: [4, 64], data: t.get('rotate_layer')!.data }],
    ]);
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      /intkey_layer_0_comp_block_output_unit_pos_nunit_1#0\.bin: 'rotate_layer' has shape \[4, 64\], expected \[64, 4\] \(embed dim 64, rank 4\)/,
    );
    await writeTorchFile(file, [
      ['weight', t.get('weight')!],
      ['bias', t.get('bias')!],
    ]);
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      /#0\.bin: missing 'rotate_layer' for a LoreftIntervention; it holds weight \[4, 64\], bias \[4\], rotate_layer \[64, 4\]/,
    );
    await writeTorchFile(file, [...t, ['lora_A', t.get('bias')!]]);
    await expect(readPyreftFolder(dir)).rejects.toThrow(/#0\.bin: unexpected tensor 'lora_A' for a LoreftIntervention/);
  });

  it('rejects sorted_keys that disagree with the representations', async () => {
    const dir = copyFixture();
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    config.representations[1][0] = 3;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      /sorted_keys .* do not match the keys pyvene derives from representations .*layer_3_comp/,
    );
  });

  it('rejects malformed representations and list lengths', async () => {
    const dir = copyFixture();
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    config.representations[0][4] = 'four';
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await expect(readPyreftFolder(dir)).rejects.toThrow(/representations\[0\]: low_rank_dimension must be a positive integer, got "four"/);
    config.representations[0][4] = 4;
    config.intervention_dimensions = [64];
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    await expect(readPyreftFolder(dir)).rejects.toThrow(/'intervention_dimensions' must be a list of 2 entries/);
  });

  it('rejects a key that does not match what pyvene derives', async () => {
    const { interventions } = await readPyreftFolder(reftDir);
    await expect(writePyreftFolder(path.join(tmp(), 'x'), { interventions: [{ ...interventions[0]!, key: 'layer_0#0' }] })).rejects.toThrow(
      "interventions[0] has key 'layer_0#0', but pyvene derives 'layer_0_comp_block_output_unit_pos_nunit_1#0'",
    );
  });

  it('refuses a .bin that would run code', async () => {
    const dir = copyFixture();
    const evil = [0x80, 2, 0x63, ...new TextEncoder().encode('posix\nsystem\n'), 0x58, 2, 0, 0, 0, 0x6c, 0x73, 0x85, 0x52, 0x2e];
    const { encodeZip, concatChunks } = await import('../../src/io/zip.js');
    writeFileSync(
      path.join(dir, 'intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.bin'),
      concatChunks(encodeZip([{ name: 'x/data.pkl', data: Uint8Array.from(evil) }])),
    );
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      /intkey_layer_2_comp_block_output_unit_pos_nunit_1#0\.bin: x\/data\.pkl: byte 2: global 'posix\.system' is not allowed/,
    );
  });
});

describe('the positions typetune records in config.json', () => {
  it('are absent from what pyreft wrote, written and read back when given, and kept when a read folder is written again', async () => {
    const folder = await readPyreftFolder(reftDir);
    expect(folder.positions).toBeUndefined();
    const dir = path.join(tmp(), 'with');
    await writePyreftFolder(dir, { ...folder, positions: 'f2+l2' });
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config.positions).toBe('f2+l2');
    // Everything else is what pyvene wrote.
    delete config.positions;
    expect(config).toEqual(JSON.parse(readFileSync(path.join(reftDir, 'config.json'), 'utf8')));
    const again = path.join(tmp(), 'again');
    await writePyreftFolder(again, await readPyreftFolder(dir));
    expect(readFileSync(path.join(again, 'config.json'), 'utf8')).toBe(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect((await readPyreftFolder(again)).positions).toBe('f2+l2');
  });

  it.each([['x9'], ['f0'], ['l1+f1'], [7], [['f1']]])('refuses %j, naming the file and the notation', async (bad) => {
    const dir = copyFixture();
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), positions: bad }));
    await expect(readPyreftFolder(dir)).rejects.toThrow(
      `${file}: 'positions' is ${JSON.stringify(bad)}; expected pyreft notation fN, lN or fN+lM selecting at least one token (e.g. "f1+l1", "l1")`,
    );
    const { interventions } = await readPyreftFolder(reftDir);
    await expect(writePyreftFolder(path.join(tmp(), 'w'), { interventions, positions: bad as string })).rejects.toThrow(
      /writePyreftFolder: 'positions' is/,
    );
  });

  it('a __proto__ key in config.json stays a plain key', async () => {
    const folder = await readPyreftFolder(reftDir);
    const config = JSON.parse('{"__proto__": {"polluted": 1}, "transformers_version": "5.17.0"}') as Record<string, unknown>;
    const written = pyreftConfig({ interventions: folder.interventions, config });
    expect(Object.getPrototypeOf(written)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
