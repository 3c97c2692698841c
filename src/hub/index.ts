/** The Hugging Face Hub: model ids resolved through the shared cache (or downloaded into it), and pushing exports. */
export { hubEnv, type HubEnv } from './env.js';
export { parseHubRef, formatRef, repoFolderName, repoOfCachedFolder, type HubRef } from './ref.js';
export { HubError } from './errors.js';
export { lookupCache } from './cache.js';
export { downloadSnapshot } from './download.js';
export { resolveModelSource, resolveModelSourceSync, type ResolveOptions } from './resolve.js';
export { pushExport, pushRun, type PushOptions, type PushResult } from './push.js';
export { modelCard } from './card.js';
export type { Need } from './files.js';
