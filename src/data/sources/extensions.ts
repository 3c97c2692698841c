/** The dataset file types typetune reads (sources/index.ts has a reader for each), apart so that recipe checks need no reader. */
export const SUPPORTED_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv', '.arrow', '.feather', '.ipc', '.parquet'] as const;

export type DataFileExtension = (typeof SUPPORTED_EXTENSIONS)[number];
