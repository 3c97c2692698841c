import { describe, it, expect, beforeAll } from 'vitest';
import { useBackend } from '../../src/backend/select.js';
import { tf } from '../../src/backend/tf.js';
import { applyPrecision, type PrecisionPolicy } from '../../src/train/precision.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('precision policy', () => {
  it('fp32 is what the CPU backend computes; bf16-mixed is accepted and reported as fp32 there', () => {
    expect(applyPrecision('fp32')).toEqual({ requested: 'fp32', effective: 'fp32', note: null });
    const bf16 = applyPrecision('bf16-mixed');
    expect(bf16).toMatchObject({ requested: 'bf16-mixed', effective: 'fp32' });
    expect(bf16.note).toMatch(/honoured by the cuda backend; the cpu backend computes in fp32/);
  });

  it('is handed to a backend that understands it', () => {
    const backend = tf.backend() as unknown as { setPrecisionPolicy?: (p: PrecisionPolicy) => boolean };
    const seen: PrecisionPolicy[] = [];
    backend.setPrecisionPolicy = (p) => (seen.push(p), true);
    try {
      expect(applyPrecision('bf16-mixed')).toEqual({ requested: 'bf16-mixed', effective: 'bf16-mixed', note: null });
      expect(seen).toEqual(['bf16-mixed']);
    } finally {
      delete backend.setPrecisionPolicy;
    }
  });

  it('auto is bf16-mixed where the backend honours it and fp32 silently where not', () => {
    expect(applyPrecision('auto')).toEqual({ requested: 'auto', effective: 'fp32', note: null });
    const backend = tf.backend() as unknown as { setPrecisionPolicy?: (p: PrecisionPolicy) => boolean };
    backend.setPrecisionPolicy = () => true;
    try {
      expect(applyPrecision('auto')).toEqual({ requested: 'auto', effective: 'bf16-mixed', note: null });
    } finally {
      delete backend.setPrecisionPolicy;
    }
  });

  it('rejects an unknown policy by name', () => {
    expect(() => applyPrecision('int8' as PrecisionPolicy)).toThrow(
      /model\.precision 'int8' is not a precision policy; valid: auto, fp32, bf16-mixed, fp16-mixed/,
    );
  });
});
