/**
 * Raw recipe keys are the user's words, never the object's machinery. A key spelled
 * `__proto__`, `constructor` or `prototype` (in YAML, a `--set` path or an object recipe) must
 * be read, written and looked up as an own property like any other key, so that validation
 * reports it as unknown; read through `obj[key]` or tested with `key in obj` it would reach
 * Object.prototype (and `obj.__proto__ = …` would replace the prototype, or pollute it).
 */

/** Whether `obj` itself has `key` (inherited properties never count). */
export function hasOwnKey(obj: object, key: string): boolean {
  return Object.hasOwn(obj, key);
}

/** `obj[key]` when `obj` itself has it, else undefined. */
export function ownValue(obj: object, key: string): unknown {
  return hasOwnKey(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/** `obj[key] = value` as an own data property, whatever `key` is spelled. */
export function setOwnValue(obj: object, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}
