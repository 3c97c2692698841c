/**
 * One measurement in a process of its own (bench/matrix.ts' cells, bench/context.ts' probes): a
 * case that runs out of memory or crashes leaves nothing behind for the next. The child is this
 * same script with `args`; it reports by printing one `TAG {json}` line.
 */
import { spawnSync } from 'node:child_process';

/** The child's result, or why there is none (its exit, and its last line of stderr). */
export function runInChild<T>(args: string[], tag: string, timeoutS: number): { result: T } | { failure: string } {
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    maxBuffer: 64 * 2 ** 20,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith(`${tag} `));
  if (line) return { result: JSON.parse(line.slice(tag.length + 1)) as T };
  const last = (child.stderr ?? '').trim().split('\n').slice(-1)[0]?.slice(0, 200) ?? '';
  return { failure: `no result (exit ${child.status}${child.signal ? `, ${child.signal}` : ''}): ${last}` };
}
