/**
 * Run by attentionEngines.test.ts in a child process, whose TYPETUNE_ATTENTION_ENGINE the parent
 * sets (the addon reads it once per process): the output and gradients of ENGINE_CASES on cuda,
 * written as JSON to argv[2] with the engine the device reported. Usage:
 * `node --import tsx test/gpu/attentionEngineRun.ts OUT.json`.
 */
import { writeFileSync } from 'node:fs';
import { activeCudaBackend } from '../../src/backend/cuda/api.js';
import { ENGINE_CASES, engineResults } from './attentionEngineCases.js';
import { useCuda } from './cuda.js';

const outFile = process.argv[2];
if (!outFile) {
  console.error('attentionEngineRun.ts: usage: node --import tsx test/gpu/attentionEngineRun.ts OUT.json');
  process.exit(2);
}
await useCuda();
const { wgmmaAttention: wgmma, tmaAttention: tma } = activeCudaBackend()!.addon.deviceInfo();
writeFileSync(outFile, JSON.stringify({ wgmma, tma, results: ENGINE_CASES.map(([, c]) => engineResults(c)) }));
