/** A model family: the model_type names it answers to and how it reads config.json into a ModelSpec. */
import type { ModelSpec } from './spec.js';
import type { ConfigReader } from './hfConfig.js';

export interface Family {
  /** `model_type` values this family handles. */
  modelTypes: string[];
  spec(config: ConfigReader): ModelSpec;
}
