/**
 * Orthonormal low-rank rotations for ReFT, in plain float64 JavaScript (the matrices are
 * [hidden, rank] with a small rank, so this is cheap next to a forward pass).
 *
 * pyreft keeps LoReFT/DiReFT's R (stored as `rotate_layer` [H, r] = Rᵀ) on the Stiefel
 * manifold with `torch.nn.utils.parametrizations.orthogonal`: the trained parameter is an
 * unconstrained matrix mapped through Householder reflections and a random orthogonal
 * completion `base`. That path depends on torch's RNG, so no other program can replay it;
 * typetune trains Rᵀ directly and retracts it onto the manifold after every optimiser
 * step (QR retraction: the Q of Rᵀ = QR with diag(R) > 0, which is the nearest-to-identity
 * choice and leaves an already orthonormal matrix unchanged). The files below convert to
 * and from pyreft's parametrised form where its state dict exposes it (DiReFT).
 *
 * All matrices are row-major.
 */
import type { Rng } from '../random.js';

/**
 * The Q factor (with a positive R diagonal) of a tall matrix [rows, cols], rows ≥ cols, by
 * modified Gram–Schmidt run twice ("twice is enough") for orthogonality to float64 precision.
 */
export function orthonormalizeColumns(m: ArrayLike<number>, rows: number, cols: number): Float64Array {
  if (rows < cols) throw new Error(`cannot orthonormalise ${cols} columns of length ${rows}: needs rows ≥ cols (rank ≤ hidden size)`);
  const q = Float64Array.from(m as ArrayLike<number>);
  const dependent = gramSchmidtInPlace(q, rows, cols);
  if (dependent >= 0) throw new Error(dependentColumnMessage(dependent, rows, cols));
  return q;
}

/** Why a retraction failed: column `j` (0-based) had no length left once the earlier ones were taken out. */
export function dependentColumnMessage(j: number, rows: number, cols: number): string {
  return `column ${j} of a [${rows}, ${cols}] rotation is linearly dependent on the others; cannot orthonormalise`;
}

/**
 * orthonormalizeColumns' work on `q` itself: −1 when every column came out orthonormal, else the
 * first column with no length left (q then half done). kernels/src/orthonormalize.cu does the same
 * operations in this order.
 */
export function gramSchmidtInPlace(q: Float64Array, rows: number, cols: number): number {
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let k = 0; k < rows; k++) dot += q[k * cols + i]! * q[k * cols + j]!;
        for (let k = 0; k < rows; k++) q[k * cols + j]! -= dot * q[k * cols + i]!;
      }
    }
    let norm = 0;
    for (let k = 0; k < rows; k++) norm += q[k * cols + j]! ** 2;
    norm = Math.sqrt(norm);
    if (!(norm > 1e-30)) return j;
    for (let k = 0; k < rows; k++) q[k * cols + j]! /= norm;
  }
  return -1;
}

/** `torch.nn.init.orthogonal_` on a [rows, cols] matrix (rows ≥ cols): the Q of a Gaussian matrix. */
export function orthogonalInit(rng: Rng, rows: number, cols: number): Float32Array {
  const g = new Float64Array(rows * cols);
  for (let i = 0; i < g.length; i++) g[i] = rng.normal();
  return Float32Array.from(orthonormalizeColumns(g, rows, cols));
}

/** max |MᵀM − I| for M [rows, cols]: how far the columns are from orthonormal. */
export function orthonormalityError(m: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let i = 0; i < cols; i++) {
    for (let j = i; j < cols; j++) {
      let dot = 0;
      for (let k = 0; k < rows; k++) dot += m[k * cols + i]! * m[k * cols + j]!;
      worst = Math.max(worst, Math.abs(dot - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/**
 * What torch's orthogonal parametrisation (Householder map, `use_trivialization=True`)
 * computes from its stored `original` X [n, k] (n ≥ k) and `base` [n, n]:
 * Q = base · (H₀H₁…H_{k−1})[:, :k] · diag(int(diag X)), with H_j = I − τ_j v_j v_jᵀ,
 * v_j = e_j + tril(X, −1)[:, j], τ_j = 2 / (1 + ‖tril(X, −1)[:, j]‖²).
 */
export function householderOrthogonal(original: ArrayLike<number>, n: number, k: number, base?: ArrayLike<number>): Float64Array {
  if (n < k) throw new Error(`orthogonal parametrisation 'original' [${n}, ${k}] must be tall (n ≥ k)`);
  const q = new Float64Array(n * k);
  for (let j = 0; j < k; j++) q[j * k + j] = 1;
  for (let j = k - 1; j >= 0; j--) {
    let tail = 0;
    for (let i = j + 1; i < n; i++) tail += original[i * k + j]! ** 2;
    const tau = 2 / (1 + tail);
    const v = (i: number): number => (i === j ? 1 : original[i * k + j]!);
    for (let c = 0; c < k; c++) {
      let w = 0;
      for (let i = j; i < n; i++) w += v(i) * q[i * k + c]!;
      w *= tau;
      if (w === 0) continue;
      for (let i = j; i < n; i++) q[i * k + c]! -= w * v(i);
    }
  }
  for (let j = 0; j < k; j++) {
    const s = Math.trunc(original[j * k + j]!); // torch casts the diagonal with .int()
    for (let i = 0; i < n; i++) q[i * k + j]! *= s;
  }
  if (!base) return q;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < n; l++) {
      const b = base[i * n + l]!;
      if (b === 0) continue;
      for (let c = 0; c < k; c++) out[i * k + c]! += b * q[l * k + c]!;
    }
  }
  return out;
}

/**
 * An orthogonal [n, n] matrix whose first k columns are M's (M [n, k] with orthonormal
 * columns), from M's Householder QR. This is the `base` that torch's parametrisation
 * builds for M, so `original = −I` with this `base` reproduces M exactly as pyreft's own
 * freshly initialised layers are stored.
 */
export function orthogonalCompletion(m: ArrayLike<number>, n: number, k: number): Float64Array {
  const a = Float64Array.from(m as ArrayLike<number>);
  const vs: Float64Array[] = [];
  const diag: number[] = [];
  for (let j = 0; j < k; j++) {
    let norm = 0;
    for (let i = j; i < n; i++) norm += a[i * k + j]! ** 2;
    norm = Math.sqrt(norm);
    const x0 = a[j * k + j]!;
    const alpha = x0 >= 0 ? -norm : norm;
    const v = new Float64Array(n - j);
    for (let i = j; i < n; i++) v[i - j] = a[i * k + j]!;
    v[0]! -= alpha;
    let vn = 0;
    for (const x of v) vn += x * x;
    vn = Math.sqrt(vn);
    if (vn > 0) for (let i = 0; i < v.length; i++) v[i]! /= vn;
    for (let c = j; c < k; c++) {
      let w = 0;
      for (let i = j; i < n; i++) w += v[i - j]! * a[i * k + c]!;
      for (let i = j; i < n; i++) a[i * k + c]! -= 2 * w * v[i - j]!;
    }
    vs.push(v);
    diag.push(a[j * k + j]!);
  }
  // Q = H₀…H_{k−1} applied to the identity.
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j]!;
    for (let c = 0; c < n; c++) {
      let w = 0;
      for (let i = j; i < n; i++) w += v[i - j]! * q[i * n + c]!;
      if (w === 0) continue;
      for (let i = j; i < n; i++) q[i * n + c]! -= 2 * w * v[i - j]!;
    }
  }
  // M = Q·R with R ≈ diag(±1): flip Q's first columns so they equal M's.
  for (let j = 0; j < k; j++) {
    if (diag[j]! < 0) for (let i = 0; i < n; i++) q[i * n + j] = -q[i * n + j]!;
  }
  return q;
}
