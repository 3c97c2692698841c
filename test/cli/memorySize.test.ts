import { describe, expect, it } from 'vitest';
import { parseMemorySize } from '../../src/cli/memorySize.js';

describe('--fit sizes', () => {
  it('reads binary and decimal units', () => {
    expect(parseMemorySize('80GiB', '--fit')).toBe(80 * 2 ** 30);
    expect(parseMemorySize('80GB', '--fit')).toBe(80e9);
    expect(parseMemorySize('512 MiB', '--fit')).toBe(512 * 2 ** 20);
    expect(parseMemorySize('1.5gib', '--fit')).toBe(1.5 * 2 ** 30);
    expect(parseMemorySize('4096', '--fit')).toBe(4096);
  });

  it.each(['lots', '80XB', '-1GiB', '0GiB', ''])('refuses %j naming the flag and the valid forms', (text) => {
    expect(() => parseMemorySize(text, '--fit')).toThrow(/^--fit '.*' is not a memory size; use .*80GiB, 80GB, 512MiB/);
  });
});
