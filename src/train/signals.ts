/**
 * Ctrl-C and SIGTERM while training: the first asks the loop to stop after the current step
 * (it then saves a checkpoint and prints how to resume); a second one leaves at once.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/** The exit code a shell reports for a process ended by `signal` (128 + its number). */
export function signalExitCode(signal: StopSignal): number {
  return signal === 'SIGINT' ? 130 : 143;
}

/**
 * Route SIGINT/SIGTERM to `requestStop` while a run is in progress. `stopping()` says whether a
 * stop was already asked for, so a second signal exits without saving. Returns an uninstaller.
 */
export function catchStopSignals(requestStop: (signal: StopSignal) => void, stopping: () => boolean): () => void {
  const handler = (signal: StopSignal): void => {
    if (stopping()) {
      process.stderr.write(`\n${signal} again: exiting without saving\n`);
      process.exit(signalExitCode(signal));
    }
    requestStop(signal);
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
