/** The data pipeline: sources → formats → tokens, labels, ReFT positions → batches. */
export { loadTokenizer, type Tokenizer, type ChatMessage } from './tokenizer.js';
export { DataError } from './errors.js';
export { readRows, SUPPORTED_EXTENSIONS, type Row, type RowSet } from './sources/index.js';
export { FORMATS, alpacaPrompt, type FormatName } from './formats/index.js';
export { IGNORE_INDEX, truncate, type TokenizedExample } from './example.js';
export { packExamples } from './packing.js';
export { mulberry32, permutation } from './shuffle.js';
export {
  parsePositions,
  pyreftLocations,
  examplePositions,
  promptPositions,
  groupOfIntervention,
  splitsInterventions,
  type ReftPositionSpec,
  type PadMode,
} from './reftPositions.js';
export {
  makeBatches,
  iterateBatches,
  collate,
  epochOrder,
  batchesPerEpoch,
  type Batch,
  type BatchOptions,
  type DataPosition,
} from './batching.js';
export { loadDataset, holdOut, type DatasetSpec, type LoadedDataset, type DatasetStats, type DatasetBatchOptions } from './dataset.js';
