/** An error in what the user asked of the Trainer (not a bug): the CLI prints it as one line. */
export class TrainerError extends Error {
  /** Bad input, not a bug: the CLI prints the message alone. */
  readonly userFacing = true;

  constructor(message: string) {
    super(message);
    this.name = 'TrainerError';
  }
}
