/**
 * How to hold a model's projection weights in 4 bits at load (QLoRA), as loadModel and recipes
 * ask for it; apart from model/quantized.ts so the library's public types name no tfjs type.
 */
import type { FourBitType } from '../quant/index.js';

export interface QuantizationOptions {
  type: FourBitType;
  blocksize?: number;
  doubleQuant?: boolean;
}
