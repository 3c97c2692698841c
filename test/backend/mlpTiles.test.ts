/**
 * src/backend/mlpTiles.ts: which MLP halves run in tiles of rows and how many rows a tile holds —
 * every bench shape untiled, a long row of Llama-3.1-8B in whole multiples of 128 within 2^28
 * elements, a test's small tiles as asked, DoRA never.
 */
import { describe, expect, it } from 'vitest';
import { MLP_TILE_ELEMENTS, mlpTileRows } from '../../src/backend/mlpTiles.js';

describe('mlpTileRows', () => {
  it("leaves every bench shape untiled: 8 × 1024 tokens of Gemma's 16384-wide MLP and Llama-3.2-1B's 1 × 16384 are 2^27 elements", () => {
    expect(mlpTileRows(8 * 1024, 16384)).toBe(0);
    expect(mlpTileRows(16384, 8192)).toBe(0);
    expect(mlpTileRows(8 * 1024, 14336)).toBe(0);
    expect(mlpTileRows(MLP_TILE_ELEMENTS / 16384, 16384)).toBe(0);
  });

  it('tiles a long row in the most rows within the bound, a whole multiple of 128', () => {
    // 2^28 / 14336 = 18724.6: 18688 rows, 146 × 128.
    expect(mlpTileRows(300_000, 14336)).toBe(18688);
    expect(mlpTileRows(MLP_TILE_ELEMENTS / 16384 + 1, 16384)).toBe(16384);
    // Wider than the bound allows 128 rows of: as many rows as fit, at least one.
    expect(mlpTileRows(10_000, 2 ** 22)).toBe(64);
    expect(mlpTileRows(10, 2 ** 29)).toBe(1);
  });

  it('asked for tiles, takes them where they are fewer than the rows; DoRA stays untiled whatever is asked', () => {
    expect(mlpTileRows(18, 64, { requested: 5 })).toBe(5);
    expect(mlpTileRows(18, 64, { requested: 18 })).toBe(0);
    expect(mlpTileRows(18, 64, { requested: 5, dora: true })).toBe(0);
    expect(mlpTileRows(300_000, 14336, { dora: true })).toBe(0);
    expect(mlpTileRows(0, 14336)).toBe(0);
  });
});
