/**
 * The dataset file types typetune reads (src/data/sources/index.ts has a reader for each). They
 * live here, below data/, because the recipe needs them too: a data.path ending like a data file
 * is a local file (missing, maybe), never a Hub dataset id.
 */
export const SUPPORTED_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv', '.arrow', '.feather', '.ipc', '.parquet'] as const;

export type DataFileExtension = (typeof SUPPORTED_EXTENSIONS)[number];
