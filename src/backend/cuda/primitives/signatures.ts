/**
 * The device primitives' signatures: each primitive's name and its arguments in order, each
 * `name:kind`. This is the TypeScript side's one statement of the order: the typed builders
 * beside this file pass their arguments by name (Program.add puts them in this order), the CPU
 * emulation (test/gpu/emulatedPrimitives.ts) decodes by it, and it is compared with the C++
 * side's `TT_PRIMITIVE` registrations — by test/backend/cuda/primitives/signatures.test.ts from the
 * kernels' source (no GPU needed), and by registerCudaBackend (../register.ts) against the loaded
 * addon's `primitives()`, which refuses to start on the first difference.
 *
 * Kinds: `ptr` a device address (0 for none), `dtype` a physical dtype code (addon.ts DTYPE),
 * `int` an integer (sizes, strides, codes, seeds), `float` a real number, `flag` a boolean
 * (travels as 1 or 0). In the C++ registrations `q:view` stands for a strided attention view's
 * five arguments, spelled out here by `view`.
 */

export const ARG_KINDS = ['ptr', 'dtype', 'int', 'float', 'flag'] as const;
export type ArgKind = (typeof ARG_KINDS)[number];
type Token = `${string}:${ArgKind}`;

/** A flash attention tensor view (kernels/src/flash_attention.cuh tensorArg): pointer, dtype, batch/head/row strides. */
const view = <P extends string>(p: P) =>
  [`${p}:ptr`, `${p}Dtype:dtype`, `${p}BatchStride:int`, `${p}HeadStride:int`, `${p}RowStride:int`] as const;

/** The names `view` gives a view's five arguments, for readers of a `q:view` token. */
export const VIEW_PARTS = view('').map((t) => t.split(':') as [string, ArgKind]);

/** Flash attention's problem (kernels/src/flash_attention.cuh shapeArg). */
const PROBLEM = [
  'batch:int',
  'heads:int',
  'kvHeads:int',
  'sq:int',
  'sk:int',
  'headDim:int',
  'scale:float',
  'causal:flag',
  'window:int',
  'queryOffset:int',
] as const;

/** One weight of a `dequantize4bit` launch (kernels/src/dequantize_4bit.cu), its names suffixed by its slot. */
const dequantPart = <I extends number>(i: I) =>
  [
    `packed${i}:ptr`,
    `absmax${i}:ptr`,
    `nestedAbsmax${i}:ptr`,
    `nestedCode${i}:ptr`,
    `offset${i}:float`,
    `nestedBlocksize${i}:int`,
    `out${i}:ptr`,
    `outType${i}:dtype`,
    `n${i}:int`,
    `blocksize${i}:int`,
    `quantType${i}:int`,
    `roundTo${i}:int`,
  ] as const;

/** Weights one `dequantize4bit` launch takes (kDequant4bitGroup in kernels/src/kernels.h). */
export const DEQUANTIZE_GROUP = 4;

export const PRIMITIVE_SIGNATURES = {
  gemm: [
    'a:ptr',
    'b:ptr',
    'c:ptr',
    'd:ptr',
    'abType:dtype',
    'dType:dtype',
    'm:int',
    'n:int',
    'k:int',
    'transA:flag',
    'transB:flag',
    'lda:int',
    'ldb:int',
    'ldd:int',
    'alpha:float',
    'beta:float',
    'bias:ptr',
    'batch:int',
    'strideA:int',
    'strideB:int',
    'strideD:int',
  ],
  rmsNormForward: ['x:ptr', 'xt:dtype', 'w:ptr', 'y:ptr', 'rows:int', 'cols:int', 'eps:float', 'offset:float'],
  rmsNormBackward: [
    'dy:ptr',
    'dyt:dtype',
    'x:ptr',
    'xt:dtype',
    'w:ptr',
    'dx:ptr',
    'dxt:dtype',
    'dw:ptr',
    'rows:int',
    'cols:int',
    'eps:float',
    'offset:float',
    'residual:ptr',
  ],
  layerNormForward: ['x:ptr', 'xt:dtype', 'w:ptr', 'b:ptr', 'y:ptr', 'rows:int', 'cols:int', 'eps:float'],
  layerNormBackward: [
    'dy:ptr',
    'dyt:dtype',
    'x:ptr',
    'xt:dtype',
    'w:ptr',
    'dx:ptr',
    'dxt:dtype',
    'dw:ptr',
    'db:ptr',
    'rows:int',
    'cols:int',
    'eps:float',
    'residual:ptr',
  ],
  gatedActivationForward: ['gate:ptr', 'up:ptr', 't:dtype', 'out:ptr', 'n:int', 'act:int'],
  gatedActivationBackward: ['dy:ptr', 'dyt:dtype', 'gate:ptr', 'up:ptr', 't:dtype', 'dgate:ptr', 'dup:ptr', 'dt:dtype', 'n:int', 'act:int'],
  ropeForward: ['x:ptr', 't:dtype', 'cos:ptr', 'sin:ptr', 'y:ptr', 'rows:int', 'seq:int', 'inner:int', 'headDim:int', 'rotaryDim:int'],
  ropeBackward: ['x:ptr', 't:dtype', 'cos:ptr', 'sin:ptr', 'y:ptr', 'rows:int', 'seq:int', 'inner:int', 'headDim:int', 'rotaryDim:int'],
  dropout: ['x:ptr', 'y:ptr', 't:dtype', 'n:int', 'seed:int', 'offset:int', 'rate:float', 'accumulate:flag'],
  doraScale: ['w:ptr', 't:dtype', 'rows:int', 'cols:int', 'magnitude:ptr', 'norm:ptr', 'scale:ptr'],
  columnScale: [
    'x:ptr',
    'y:ptr',
    't:dtype',
    'rows:int',
    'cols:int',
    'scale:ptr',
    'shift:float',
    'bias:ptr',
    'residual:ptr',
    'accumulate:flag',
  ],
  columnDot: ['a:ptr', 'b:ptr', 't:dtype', 'rows:int', 'cols:int', 'divisor:ptr', 'out:ptr'],
  flashAttentionForward: [
    ...view('q'),
    ...view('k'),
    ...view('v'),
    'keyMask:ptr',
    'maskDtype:dtype',
    'exampleStarts:ptr',
    ...view('out'),
    'lse:ptr',
    ...PROBLEM,
  ],
  flashAttentionBackward: [
    ...view('q'),
    ...view('k'),
    ...view('v'),
    'keyMask:ptr',
    'maskDtype:dtype',
    'exampleStarts:ptr',
    ...view('out'),
    ...view('dOut'),
    'lse:ptr',
    ...view('dq'),
    ...view('dk'),
    ...view('dv'),
    ...PROBLEM,
    'workspace:ptr',
    'workspaceBytes:int',
  ],
  dequantize4bit: ['count:int', ...dequantPart(0), ...dequantPart(1), ...dequantPart(2), ...dequantPart(3)],
} as const satisfies Record<string, readonly Token[]>;

export type PrimitiveName = keyof typeof PRIMITIVE_SIGNATURES;

type NameOf<T> = T extends `${infer N}:${string}` ? N : never;
type ValueOf<T> = T extends `${string}:flag` ? boolean : number;

/** A primitive's arguments by name: numbers, booleans for flags. */
export type PrimitiveArgs<P extends PrimitiveName> = {
  [T in (typeof PRIMITIVE_SIGNATURES)[P][number] as NameOf<T>]: ValueOf<T>;
};

/** One argument of a signature. */
export interface ArgSpec {
  name: string;
  kind: ArgKind;
}

const parsed = new Map<string, readonly ArgSpec[]>(
  Object.entries(PRIMITIVE_SIGNATURES).map(([name, tokens]) => [name, (tokens as readonly string[]).map(parseToken)]),
);

function parseToken(token: string): ArgSpec {
  const [name, kind] = token.split(':') as [string, ArgKind];
  return { name, kind };
}

/** The arguments of primitive `name`, in order; undefined for a name the table lacks. */
export function primitiveSignature(name: string): readonly ArgSpec[] | undefined {
  return parsed.get(name);
}

/** Every primitive's signature, in the table's order. */
export function primitiveSignatures(): ReadonlyArray<{ name: PrimitiveName; args: readonly ArgSpec[] }> {
  return [...parsed].map(([name, args]) => ({ name: name as PrimitiveName, args }));
}

/** `x:ptr xt:dtype …`, the form the addon's `primitives()` reports a signature in. */
export function signatureText(args: readonly ArgSpec[]): string {
  return args.map((a) => `${a.name}:${a.kind}`).join(' ');
}

/**
 * The first difference between this table and an addon's primitives (`name` and `args`, the
 * addon's signature text), as one line; undefined when every primitive of this table is there
 * with the same arguments in the same order. Primitives only the addon has are no difference:
 * an addon built from newer kernels still serves this code.
 */
export function signatureMismatch(addon: ReadonlyArray<{ name: string; args: string }>): string | undefined {
  const theirs = new Map(addon.map((p) => [p.name, p.args]));
  for (const { name, args } of primitiveSignatures()) {
    if (!theirs.has(name)) return `the CUDA addon has no primitive '${name}'`;
    const text = theirs.get(name);
    if (typeof text !== 'string') return `the CUDA addon does not report primitive '${name}''s arguments (built before signatures)`;
    const got = text.split(/\s+/).filter(Boolean);
    const want = args.map((a) => `${a.name}:${a.kind}`);
    for (let i = 0; i < Math.max(got.length, want.length); i++) {
      if (got[i] !== want[i]) {
        return `primitive '${name}' argument ${i}: the CUDA addon has ${got[i] ?? 'nothing'}, src/backend/cuda/primitives/signatures.ts has ${want[i] ?? 'nothing'}`;
      }
    }
  }
  return undefined;
}
