/**
 * The logged training loss, as Hugging Face's Trainer logs it: the mean of the step losses
 * since the last log line (the logging window, `logging.every_steps`), not one step's loss,
 * which jumps with every batch. A non-finite loss (a step `nonfinite: skip_step` skipped) is
 * left out, as transformers' `logging_nan_inf_filter` (on by default) leaves it out.
 */
export class LossWindow {
  private sum = 0;
  private finite = 0;
  /** Steps since the window opened, skipped ones included. */
  steps = 0;

  add(loss: number): void {
    this.steps += 1;
    if (!Number.isFinite(loss)) return;
    this.sum += loss;
    this.finite += 1;
  }

  /** The window's mean loss so far; NaN when every step in it was skipped. */
  get mean(): number {
    return this.finite > 0 ? this.sum / this.finite : NaN;
  }

  /** Open the next window (after a logged step). */
  reset(): void {
    this.sum = 0;
    this.finite = 0;
    this.steps = 0;
  }
}
