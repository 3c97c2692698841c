/**
 * AdamW with decoupled weight decay, computed exactly as PyTorch's `torch.optim.AdamW`
 * (single-tensor path, amsgrad off) so that a run here follows the trajectory a PyTorch
 * run takes from the same weights and gradients:
 *
 *   p ← p · (1 − lr·wd)
 *   m ← m + (1 − β1)(g − m)                (torch's lerp; equals β1·m + (1 − β1)·g)
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)
 *
 * where g is the gradient times the step's clip coefficient (torch clips g in place first).
 * A device with a fused step (src/backend/device.ts; cuda: kernels/src/adamw.cu) runs it
 * over every parameter at once, in place; elsewhere the update below — tfjs ops on whichever
 * backend holds the parameters — is the reference that defines the numerics. The state (step
 * count, m and v per parameter name) is exposed as host arrays so checkpoints save and restore
 * it bit for bit.
 */
import { tf, type Tensor } from '../backend/tf.js';
import { activeDevice, type AdamWHyper, type AdamWTensors } from '../backend/device.js';

export interface AdamWOptions {
  /** Base learning rate; `step(grads, lr)` may pass the scheduled one. */
  lr: number;
  betas: [number, number];
  eps: number;
  /** Decoupled weight decay (torch's default for AdamW is 0.01; the recipe's default is 0). */
  weightDecay: number;
  /**
   * Parameters that take no weight decay. Hugging Face's Trainer exempts biases and norm
   * weights (`get_decay_parameter_names`); the Trainer passes that rule here.
   */
  noDecay?: (name: string) => boolean;
}

/** One parameter's moments as plain arrays. */
export interface AdamWMoments {
  shape: number[];
  m: Float32Array;
  v: Float32Array;
}

/** Everything needed to continue optimisation exactly where it stopped. */
export interface AdamWState {
  /** Number of optimizer steps taken (torch's per-parameter `step`, shared here). */
  step: number;
  moments: Map<string, AdamWMoments>;
}

export class AdamW {
  private t = 0;
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();
  /** A guarded step was queued whose verdict the host has not read yet (`settle`). */
  private unsettled = false;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    readonly options: AdamWOptions,
  ) {
    const [b1, b2] = options.betas;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) throw new Error(`AdamW: betas must lie in [0, 1), got [${b1}, ${b2}]`);
    if (!(options.eps >= 0)) throw new Error(`AdamW: eps must be ≥ 0, got ${options.eps}`);
    if (!(options.lr >= 0)) throw new Error(`AdamW: learning rate must be ≥ 0, got ${options.lr}`);
    if (!(options.weightDecay >= 0)) throw new Error(`AdamW: weight decay must be ≥ 0, got ${options.weightDecay}`);
    for (const [name, p] of params) {
      this.m.set(name, tf.keep(tf.zerosLike(p)));
      this.v.set(name, tf.keep(tf.zerosLike(p)));
    }
  }

  /** Optimizer steps taken so far. */
  get stepCount(): number {
    return this.t;
  }

  /**
   * One update of every parameter that has a gradient, each gradient multiplied by
   * `gradScale` first (global-norm clipping's coefficient). `grads` is keyed like the
   * parameters; a parameter without a gradient is left alone (torch skips `grad is None`).
   */
  step(grads: Map<string, Tensor>, lr = this.options.lr, gradScale = 1): void {
    const { hyper, names, tensors } = this.update(grads, lr, gradScale);
    const device = activeDevice();
    if (device.adamwStep) return device.adamwStep(tensors, hyper);
    tensors.forEach((t, i) => {
      const [m, v] = referenceStep(t, hyper);
      t.m.dispose();
      t.v.dispose();
      this.m.set(names[i]!, m);
      this.v.set(names[i]!, v);
    });
  }

  /** Counts a step and gathers what it updates: every parameter that has a gradient, in the parameters' order. */
  private update(
    grads: Map<string, Tensor>,
    lr: number,
    gradScale: number,
  ): { hyper: AdamWHyper; names: string[]; tensors: AdamWTensors[] } {
    for (const name of grads.keys()) {
      if (!this.params.has(name)) throw new Error(`AdamW: gradient for unknown parameter '${name}'`);
    }
    const [beta1, beta2] = this.options.betas;
    this.t += 1;
    const hyper: AdamWHyper = { lr, beta1, beta2, eps: this.options.eps, step: this.t, gradScale };
    const names: string[] = [];
    const tensors: AdamWTensors[] = [];
    for (const [name, param] of this.params) {
      const grad = grads.get(name);
      if (!grad) continue;
      const weightDecay = this.options.noDecay?.(name) ? 0 : this.options.weightDecay;
      names.push(name);
      tensors.push({ param, grad, m: this.m.get(name)!, v: this.v.get(name)!, weightDecay });
    }
    return { hyper, names, tensors };
  }

  /**
   * `step` with global-norm clipping at `maxGradNorm` (null: none) and the skip of a step whose
   * loss or gradient norm is not finite decided on the device (`adamwStepGuarded`), so that
   * nothing waits for the host before the update is queued. `losses` are the step's float32
   * losses. Returns the gradients' global norm as a float32 scalar on the device (the caller
   * disposes it), or null where the device has no guarded step — nothing happened then. The step
   * is counted; the caller, once it has read back the losses and norm, calls `settle` (a
   * non-finite one: skipped, not counted) before the next guarded step or the state is read.
   */
  stepGuarded(grads: Map<string, Tensor>, lr: number, maxGradNorm: number | null, losses: Tensor): Tensor | null {
    const device = activeDevice();
    if (!device.adamwStepGuarded) return null;
    // Its bias corrections count the last guarded step: whether that one was skipped must be known.
    if (this.unsettled) throw new Error('AdamW: the last guarded step is not settled yet (settle it first)');
    const { hyper, tensors } = this.update(grads, lr, 1);
    const { gradScale: _, ...rest } = hyper;
    let norm: Tensor;
    try {
      norm = device.adamwStepGuarded(tensors, { ...rest, maxGradNorm }, losses);
    } catch (err) {
      this.t -= 1; // nothing was queued
      throw err;
    }
    this.unsettled = true;
    return norm;
  }

  /** The host has read the last `stepGuarded`'s losses and norm: a skipped step does not count (bias corrections stay where they were). */
  settle(skipped: boolean): void {
    if (!this.unsettled) throw new Error('AdamW: no guarded step to settle');
    this.unsettled = false;
    if (skipped) this.t -= 1;
  }

  /** A copy of the state on the host. */
  getState(): AdamWState {
    if (this.unsettled) throw new Error('AdamW: the last guarded step is not settled yet: its step count is not known');
    const moments = new Map<string, AdamWMoments>();
    for (const [name, p] of this.params) {
      moments.set(name, {
        shape: [...p.shape],
        m: Float32Array.from(this.m.get(name)!.dataSync() as Float32Array),
        v: Float32Array.from(this.v.get(name)!.dataSync() as Float32Array),
      });
    }
    return { step: this.t, moments };
  }

  /** Restore a state from `getState` (or a checkpoint); every parameter must be present with its shape. */
  setState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0)
      throw new Error(`AdamW state: step must be a non-negative integer, got ${state.step}`);
    for (const name of state.moments.keys()) {
      if (!this.params.has(name)) throw new Error(`AdamW state: moments for '${name}', which is not a trainable parameter of this adapter`);
    }
    const next = new Map<string, [Tensor, Tensor]>();
    for (const [name, p] of this.params) {
      const s = state.moments.get(name);
      if (!s) throw new Error(`AdamW state: no moments for parameter '${name}'`);
      if (s.shape.length !== p.shape.length || s.shape.some((d, i) => d !== p.shape[i]) || s.m.length !== p.size || s.v.length !== p.size) {
        throw new Error(`AdamW state: '${name}' has shape [${s.shape.join(', ')}] but the parameter is [${p.shape.join(', ')}]`);
      }
      next.set(name, [tf.keep(tf.tensor(s.m, p.shape, 'float32')), tf.keep(tf.tensor(s.v, p.shape, 'float32'))]);
    }
    this.disposeMoments();
    for (const [name, [m, v]] of next) {
      this.m.set(name, m);
      this.v.set(name, v);
    }
    this.t = state.step;
  }

  dispose(): void {
    this.disposeMoments();
  }

  private disposeMoments(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** The formula above for one parameter, in tfjs ops: assigns p, returns the new m and v. */
function referenceStep({ param: p, grad, m: m0, v: v0, weightDecay: wd }: AdamWTensors, h: AdamWHyper): [Tensor, Tensor] {
  const stepSize = h.lr / (1 - h.beta1 ** h.step);
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** h.step);
  return tf.tidy(() => {
    const g = h.gradScale !== 1 ? tf.mul(grad, h.gradScale) : grad;
    const decayed = wd !== 0 ? tf.mul(p, 1 - h.lr * wd) : p;
    const m = lerp(m0, g, 1 - h.beta1);
    const v = tf.add(tf.mul(v0, h.beta2), tf.mul(tf.mul(g, g), 1 - h.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), h.eps);
    p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
    return [m, v];
  });
}

/**
 * torch.lerp(start, end, w) as its kernel computes it: the form depends on w so that the
 * result is exact at both ends.
 */
function lerp(start: Tensor, end: Tensor, w: number): Tensor {
  const diff = tf.sub(end, start);
  return w < 0.5 ? tf.add(start, tf.mul(diff, w)) : tf.sub(end, tf.mul(diff, 1 - w));
}
