// npm run bench:startup [-- --runs 30 --root DIR]: start-up cost of the CLI. Spawns
// `node DIR/dist/cli/train.js --help` (DIR: this checkout, after `npm run build`) RUNS times
// one after another and prints the median and the spread of the wall time and the largest
// resident set of a run (the child's peak RSS, from getrusage). --root measures another
// checkout, e.g. an older commit built in a temporary worktree.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const root = path.resolve(arg('root', path.join(path.dirname(fileURLToPath(import.meta.url)), '..')));
const runs = Number(arg('runs', '30'));
const cli = path.join(root, 'dist/cli/train.js');
if (!existsSync(cli)) {
  console.error(`${cli} does not exist: run npm run build in ${root} first`);
  process.exit(2);
}
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`--runs must be a positive integer, got ${arg('runs', '')}`);
  process.exit(2);
}

// GNU time reports a child's peak RSS portably enough; fall back to wall time alone without it.
const timeBin = ['/usr/bin/time'].find((p) => existsSync(p));
const wall = [];
const rss = [];
for (let i = 0; i < runs; i++) {
  const command = timeBin ? [timeBin, ['-f', '%M', process.execPath, cli, '--help']] : [process.execPath, [cli, '--help']];
  const start = process.hrtime.bigint();
  const r = spawnSync(command[0], command[1], { cwd: root, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) {
    console.error(`train --help exited ${r.status}: ${r.stderr}`);
    process.exit(1);
  }
  wall.push(ms);
  if (timeBin) rss.push(Number(r.stderr.trim().split('\n').at(-1)) * 1024);
}

const sorted = [...wall].sort((a, b) => a - b);
const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
const mib = (b) => (b / 2 ** 20).toFixed(1);
console.log(`${path.relative(process.cwd(), cli) || cli}: ${runs} runs of train --help, node ${process.version}`);
console.log(`  wall ms: median ${median.toFixed(1)}, min ${sorted[0].toFixed(1)}, max ${sorted.at(-1).toFixed(1)}`);
if (rss.length)
  console.log(`  max RSS: ${mib(Math.max(...rss))} MiB (median ${mib([...rss].sort((a, b) => a - b)[Math.floor(rss.length / 2)])} MiB)`);
