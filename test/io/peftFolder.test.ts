/** PEFT folders: what PEFT writes is read, and what typetune writes is what PEFT writes. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readPeftFolder, writePeftFolder, isPeftFolder } from '../../src/io/peftFolder.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture } from '../helpers.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'tt-peft-'));

describe('PEFT folder', () => {
  it("reads PEFT's own folder: config and every tensor", () => {
    const f = readPeftFolder(fixture('peft-lora-llama/adapter'));
    expect(f.config.peft_type).toBe('LORA');
    expect(f.tensors.size).toBe(42);
    expect(f.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!.shape).toEqual([4, 128]);
    expect(isPeftFolder(fixture('peft-lora-llama/adapter'))).toBe(true);
    expect(isPeftFolder(fixture('tiny-llama'))).toBe(false);
  });

  it('writes F32 tensors in order with {"format": "pt"}, and reads them back bit for bit', async () => {
    const src = readPeftFolder(fixture('peft-lora-qwen2/adapter'));
    const dir = path.join(tmp(), 'out');
    await writePeftFolder(dir, src.config, src.tensors);
    const st = SafetensorsFile.open(path.join(dir, 'adapter_model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.keys()).toEqual([...src.tensors.keys()]);
    st.close();
    const back = readPeftFolder(dir);
    expect(back.config).toEqual(src.config);
    for (const [k, t] of src.tensors) {
      expect(back.tensors.get(k)!.shape).toEqual(t.shape);
      expect(Buffer.from(back.tensors.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
  });

  it('writes into an existing folder without removing its other files', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'notes.txt'), 'keep me');
    const src = readPeftFolder(fixture('peft-lora-qwen2/adapter'));
    await writePeftFolder(dir, src.config, src.tensors);
    expect(readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(existsSync(path.join(dir, 'adapter_config.json'))).toBe(true);
  });

  it('names the file and the problem for broken folders', () => {
    const missing = path.join(tmp(), 'nope');
    expect(() => readPeftFolder(missing)).toThrow(`${missing}: adapter folder not found`);
    const noConfig = tmp();
    expect(() => readPeftFolder(noConfig)).toThrow(/adapter_config.json: missing/);
    const badJson = tmp();
    writeFileSync(path.join(badJson, 'adapter_config.json'), '{"r": 4,');
    expect(() => readPeftFolder(badJson)).toThrow(/adapter_config.json: not valid JSON/);
    const noWeights = tmp();
    writeFileSync(path.join(noWeights, 'adapter_config.json'), '{"peft_type": "LORA"}');
    expect(() => readPeftFolder(noWeights)).toThrow(/adapter_model.safetensors: missing$/);
    writeFileSync(path.join(noWeights, 'adapter_model.bin'), 'x');
    expect(() => readPeftFolder(noWeights)).toThrow(
      /missing \(the folder has adapter_model.bin, a pickle; re-save it with safe_serialization=True\)/,
    );
    const truncated = tmp();
    mkdirSync(truncated, { recursive: true });
    writeFileSync(path.join(truncated, 'adapter_config.json'), '{}');
    writeFileSync(path.join(truncated, 'adapter_model.safetensors'), Buffer.alloc(4));
    expect(() => readPeftFolder(truncated)).toThrow(/adapter_model.safetensors: truncated/);
  });
});
