import { describe, it, expect } from 'vitest';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fixture } from '../helpers.js';
import { loadTokenizer } from '../../src/data/tokenizer.js';

const dir = fixture('tokenizer');
const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as {
  samples: string[];
  ids: number[][];
  vocab_size: number;
  chat_messages: { role: string; content: string }[];
  chat_rendered: string;
  chat_ids: number[];
};

async function tmpDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tt-tok-'));
}

describe('loadTokenizer on the reference tokenizer', () => {
  it('encodes every sample to exactly the ids tokenizers gave', async () => {
    const tok = await loadTokenizer(dir);
    expect(ref.samples.length).toBeGreaterThan(0);
    for (let i = 0; i < ref.samples.length; i++) {
      expect(tok.encode(ref.samples[i]!)).toEqual(ref.ids[i]);
      expect(tok.decode(ref.ids[i]!)).toBe(ref.samples[i]);
    }
  });

  it('renders the chat byte-identically and encodes it to chat_ids', async () => {
    const tok = await loadTokenizer(dir);
    const rendered = tok.applyChatTemplate(ref.chat_messages);
    expect(rendered).toBe(ref.chat_rendered);
    expect(tok.encode(rendered, { addSpecialTokens: false })).toEqual(ref.chat_ids);
    expect(tok.applyChatTemplate(ref.chat_messages.slice(0, 1), { addGenerationPrompt: true })).toBe(
      '<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('reads the special tokens and the vocabulary size', async () => {
    const tok = await loadTokenizer(dir);
    expect(tok.vocabSize).toBe(ref.vocab_size);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.padTokenId).toBe(3);
    expect(tok.bosTokenId).toBeUndefined();
    expect(tok.tokenToId('<|im_start|>')).toBe(1);
    expect(tok.tokenToId('no such token')).toBeUndefined();
    expect(tok.modelMaxLength).toBe(256);
    expect(tok.decode([1, 505, 271, 202, 75, 76, 2], { skipSpecialTokens: true })).toBe('user\nhi');
  });
});

describe('loadTokenizer flags and templates', () => {
  async function variant(edit: (config: Record<string, unknown>) => void): Promise<string> {
    const d = await tmpDir();
    await fs.copyFile(path.join(dir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    edit(config);
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), JSON.stringify(config));
    return d;
  }

  it('adds BOS when add_bos_token is set and passes bos_token to the template', async () => {
    const d = await variant((c) => {
      c.bos_token = { content: '<|im_start|>' };
      c.add_bos_token = true;
      c.chat_template = '{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}';
    });
    const tok = await loadTokenizer(d);
    expect(tok.bosTokenId).toBe(1);
    expect(tok.encode(ref.samples[0]!)).toEqual([1, ...ref.ids[0]!]);
    expect(tok.encode(ref.samples[0]!, { addSpecialTokens: false })).toEqual(ref.ids[0]);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<|im_start|>hi<|endoftext|>');
  });

  it('drops the BOS a post-processor adds when add_bos_token is false, as transformers rebuilds it', async () => {
    const d = await variant((c) => {
      c.bos_token = '<|im_start|>';
      c.add_bos_token = false;
    });
    const tj = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    tj.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|im_start|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|im_start|>': { id: '<|im_start|>', ids: [1], tokens: ['<|im_start|>'] } },
    };
    await fs.writeFile(path.join(d, 'tokenizer.json'), JSON.stringify(tj));
    expect((await loadTokenizer(d)).encode(ref.samples[0]!)).toEqual(ref.ids[0]);
    // Without the flag, the post-processor's BOS stays.
    const config = JSON.parse(readFileSync(path.join(d, 'tokenizer_config.json'), 'utf8'));
    delete config.add_bos_token;
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), JSON.stringify(config));
    expect((await loadTokenizer(d)).encode(ref.samples[0]!)).toEqual([1, ...ref.ids[0]!]);
  });

  it('reads chat_template.jinja when the config has none', async () => {
    const d = await variant((c) => delete c.chat_template);
    await fs.writeFile(path.join(d, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{% endfor %}');
    const tok = await loadTokenizer(d);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('[user]');
  });
});

describe('loadTokenizer errors', () => {
  it('names a missing tokenizer.json', async () => {
    const d = await tmpDir();
    await expect(loadTokenizer(d)).rejects.toThrow(`${path.join(d, 'tokenizer.json')}: not found`);
  });

  it('names a tokenizer.json that is not JSON', async () => {
    const d = await tmpDir();
    await fs.writeFile(path.join(d, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(d)).rejects.toThrow(/tokenizer\.json: not valid JSON/);
  });

  it('names a tokenizer_config.json that is not JSON', async () => {
    const d = await tmpDir();
    await fs.copyFile(path.join(dir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), 'eos_token: x');
    await expect(loadTokenizer(d)).rejects.toThrow(/tokenizer_config\.json: not valid JSON/);
  });

  it('says the chat template is missing when a chat is rendered', async () => {
    const d = await tmpDir();
    await fs.copyFile(path.join(dir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    const tok = await loadTokenizer(d);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/tokenizer_config\.json: no "chat_template"/);
  });

  it('rejects a special token that is not in the vocabulary', async () => {
    const d = await tmpDir();
    await fs.copyFile(path.join(dir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
    await expect(loadTokenizer(d)).rejects.toThrow(/"eos_token" is "<\/s>", which is not in the vocabulary/);
  });

  it('reports a template error raised by raise_exception', async () => {
    const d = await tmpDir();
    await fs.copyFile(path.join(dir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
    await fs.writeFile(
      path.join(d, 'tokenizer_config.json'),
      JSON.stringify({ chat_template: "{{ raise_exception('Roles must alternate') }}" }),
    );
    const tok = await loadTokenizer(d);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/Roles must alternate/);
  });
});

describe('tokenizer files are regular files of bounded size', () => {
  const copyOf = async (): Promise<string> => {
    const d = await fs.mkdtemp(path.join(os.tmpdir(), 'typetune-tok-fifo-'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await fs.copyFile(path.join(fixture('tiny-llama'), f), path.join(d, f));
    return d;
  };

  it('a FIFO as tokenizer.json is refused at once, not read forever', async () => {
    const d = await copyOf();
    await fs.rm(path.join(d, 'tokenizer.json'));
    execFileSync('mkfifo', [path.join(d, 'tokenizer.json')]);
    await expect(loadTokenizer(d)).rejects.toThrow(
      `${path.join(d, 'tokenizer.json')}: cannot read (${path.join(d, 'tokenizer.json')} is not a regular file (a FIFO, device or folder is never read))`,
    );
  });

  it('a FIFO as chat_template.jinja is an error, not a silent missing template', async () => {
    const d = await copyOf();
    const config = JSON.parse(readFileSync(path.join(d, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    delete config.chat_template;
    await fs.writeFile(path.join(d, 'tokenizer_config.json'), JSON.stringify(config));
    execFileSync('mkfifo', [path.join(d, 'chat_template.jinja')]);
    await expect(loadTokenizer(d)).rejects.toThrow(/chat_template\.jinja: cannot read \(.*is not a regular file/);
  });
});
