/**
 * A progress line on stderr for long transfers: rewritten in place on a terminal (a few times
 * a second), one line per finished file otherwise (logs stay readable).
 */
export interface Progress {
  /** `done` bytes of `file` have arrived; `total` is the file's size. */
  update(file: string, done: number, total: number): void;
  fileDone(file: string, total: number): void;
  end(): void;
}

const MB = 1024 * 1024;
const fmt = (bytes: number): string => (bytes >= 1024 * MB ? `${(bytes / 1024 / MB).toFixed(2)} GB` : `${(bytes / MB).toFixed(1)} MB`);

export function progressLine(title: string, grandTotal: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  const started = Date.now();
  let finished = 0;
  let lastDraw = 0;
  let drawn = false;
  const draw = (file: string, now: number): void => {
    const secs = Math.max((Date.now() - started) / 1000, 1e-3);
    const rate = now / secs;
    const pct = grandTotal > 0 ? ` ${((100 * now) / grandTotal).toFixed(0)}%` : '';
    stream.write(`\r${title}: ${file} ${fmt(now)}/${fmt(grandTotal)}${pct} ${fmt(rate)}/s\x1b[K`);
    drawn = true;
  };
  return {
    update(file, done) {
      if (!tty || Date.now() - lastDraw < 250) return;
      lastDraw = Date.now();
      draw(file, finished + done);
    },
    fileDone(file, total) {
      finished += total;
      if (tty) draw(file, finished);
      else stream.write(`${title}: ${file} (${fmt(total)}) done, ${fmt(finished)}/${fmt(grandTotal)}\n`);
    },
    end() {
      if (drawn) stream.write('\n');
    },
  };
}
