/**
 * What a pyreft folder may not record: dropout, act_fn, and (in folders pyreft wrote) the
 * positions. Apart from the loader so loadModel's public options name no tfjs type.
 */
export interface ReftLoadOptions {
  dropout?: number;
  act_fn?: string | null;
  /** pyreft notation ("f1+l1" …); overrides the positions the folder records. */
  positions?: string;
}
