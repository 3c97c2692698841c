/** bitsandbytes-compatible 4-bit quantisation: codes, (de)quantisation, serialised state, checkpoints. */
export {
  type FourBitType,
  FOUR_BIT_TYPES,
  NF4_CODE,
  FP4_CODE,
  createDynamicMap,
  defaultDynamicMap,
} from './codes.js';
export {
  type Quantized4bit,
  type PlainAbsmax,
  type NestedAbsmax,
  type SourceDType,
  type Quantize4bitOptions,
  FOUR_BIT_BLOCKSIZES,
  NESTED_BLOCKSIZE,
  quantize4bit,
  quantize4bitFromStorage,
  dequantize4bit,
  blockAbsmaxValues,
  bitsPerParameter,
  fourBitBitsPerParam,
  quantizedBytes,
  checkQuantized4bit,
} from './fourbit.js';
export {
  QuantStateError,
  type StoredTensor,
  type TensorSource,
  toBnbStateDict,
  fromBnbStateDict,
  quantStateJson,
  quantStateKey,
} from './bnbState.js';
export {
  type Bnb4bitConfig,
  readBnb4bitWeight,
  loadQuantized4bit,
  isBnb4bitWeight,
  listBnb4bitWeights,
  isBnbCompanionKey,
  parseBnb4bitConfig,
  storedBnb4bitBytes,
} from './checkpoint.js';
export { cudaMeanF32 } from './cudaMean.js';
