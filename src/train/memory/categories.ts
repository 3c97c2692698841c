/**
 * What each buffer of a traced step holds, the rows of a memory estimate's breakdown; apart from
 * trace.ts so the estimate's public type names no tfjs type.
 */
export type Category = 'weights' | 'adapter' | 'gradients' | 'optimizer' | 'activations' | 'logits' | 'workspace';
export const CATEGORIES: readonly Category[] = ['weights', 'adapter', 'gradients', 'optimizer', 'activations', 'logits', 'workspace'];

/** Bytes by category. */
export type Breakdown = Record<Category, number>;
