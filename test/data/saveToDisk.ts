/** A `datasets` save_to_disk folder written as `Dataset.save_to_disk` lays it out: Arrow stream shards, state.json, dataset_info.json. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tableFromJSON, tableToIPC } from 'apache-arrow';

export async function saveToDisk(dir: string, shards: object[][]): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const names = shards.map((_, i) => `data-0000${i}-of-0000${shards.length}.arrow`);
  for (let i = 0; i < shards.length; i++) {
    await fs.writeFile(path.join(dir, names[i]!), tableToIPC(tableFromJSON(shards[i] as Record<string, unknown>[]), 'stream'));
  }
  await fs.writeFile(path.join(dir, 'dataset_info.json'), JSON.stringify({ features: {} }));
  await fs.writeFile(
    path.join(dir, 'state.json'),
    JSON.stringify({ _data_files: names.map((filename) => ({ filename })), _fingerprint: 'x', _split: null }),
  );
}

/** A DatasetDict folder: one save_to_disk folder per split, and dataset_dict.json naming them. */
export async function saveDictToDisk(dir: string, splits: Record<string, object[]>): Promise<void> {
  for (const [split, rows] of Object.entries(splits)) await saveToDisk(path.join(dir, split), [rows]);
  await fs.writeFile(path.join(dir, 'dataset_dict.json'), JSON.stringify({ splits: Object.keys(splits) }));
}
