/** The reference batch of a fixture's reference.safetensors as plain rows (shared with the model tests). */
export { referenceBatch } from '../helpers.js';
