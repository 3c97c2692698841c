/**
 * The addon's profile switch (kernels/src/profile.h) for the CPU emulation: launches counted by
 * the addon's own category table and list of launching calls, both read from the C++ source
 * (kernels/src/profile.cpp's kRules and kCategoryNames, addon.cpp's entry<launch<…>> exports), so
 * the emulation cannot drift from them. It has no device time: every category and name reports 0 ms.
 * test/backend/cuda/profile.test.ts checks the same tables against every primitive and export.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = (file: string) => readFileSync(fileURLToPath(new URL(`../../kernels/src/${file}`, import.meta.url)), 'utf8');

/** kCategoryNames of profile.cpp, in the order of its TimeCategory enum. */
export function nativeTimeCategories(): string[] {
  const m = /kCategoryNames\[kTimeCategories\] = \{([^}]*)\}/.exec(source('profile.cpp'));
  if (!m) throw new Error('kernels/src/profile.cpp: no kCategoryNames table');
  return [...m[1]!.matchAll(/"(\w+)"/g)].map((x) => x[1]!);
}

/** kRules of profile.cpp: a launch's category is the first rule whose prefix starts its name. */
export function nativeCategoryRules(): Array<{ prefix: string; category: string }> {
  const text = source('profile.cpp');
  const enumNames = /enum class TimeCategory : int \{([^}]*)\}/
    .exec(source('profile.h'))?.[1]
    ?.split(',')
    .map((s) => s.trim());
  const table = /kRules\[\] = \{([\s\S]*?)\n\};/.exec(text)?.[1];
  if (!enumNames || !table) throw new Error('kernels/src/profile.cpp: no kRules table (or profile.h no TimeCategory)');
  const names = nativeTimeCategories();
  return [...table.matchAll(/\{"(\w+)", TimeCategory::(\w+)\}/g)].map((m) => {
    const index = enumNames.indexOf(m[2]!);
    if (index < 0) throw new Error(`kernels/src/profile.cpp: rule '${m[1]}' names no TimeCategory ${m[2]}`);
    return { prefix: m[1]!, category: names[index]! };
  });
}

/** The category the addon gives a launch named `name` (a primitive or an addon export). */
export function nativeCategoryOf(name: string, rules = nativeCategoryRules()): string {
  return rules.find((r) => name.startsWith(r.prefix))?.category ?? 'elementwise';
}

/** addon.cpp's exports that put work on the stream (entry<launch<…>>): each one timed. */
export function nativeLaunchingExports(): string[] {
  return [...source('addon.cpp').matchAll(/\{"(\w+)", entry<launch<\w+>>\}/g)].map((m) => m[1]!);
}

/** The emulated switch: launch counts per name and per category while on, 0 ms each. */
export function emulatedProfile() {
  const rules = nativeCategoryRules();
  const names = nativeTimeCategories();
  let on = false;
  let counts = new Map<string, number>(); // by launch name, in the order first launched (as the addon's name table)
  const launched = (name: string): void => {
    if (on) counts.set(name, (counts.get(name) ?? 0) + 1);
  };
  return {
    /** A launch named `name` (a primitive, a launching export) happened. */
    launched,
    /** `addon` with every launching export counted. */
    countLaunches<T extends object>(addon: T): T {
      const wrapped = { ...addon } as Record<string, unknown>;
      for (const name of nativeLaunchingExports()) {
        const fn = wrapped[name];
        if (typeof fn !== 'function') throw new Error(`the emulated addon has no '${name}', which kernels/src/addon.cpp launches`);
        wrapped[name] = (...args: unknown[]) => {
          launched(name);
          return (fn as (...a: unknown[]) => unknown)(...args);
        };
      }
      return wrapped as T;
    },
    profileEnable(enable: boolean): void {
      if (enable) counts = new Map();
      on = enable;
    },
    /** The addon's report: {ms, count} per category, and per name under byName. */
    profileRead(): Record<string, unknown> {
      const out: Record<string, unknown> = Object.fromEntries(names.map((n) => [n, { ms: 0, count: 0 }]));
      for (const [name, count] of counts) (out[nativeCategoryOf(name, rules)] as { count: number }).count += count;
      out.byName = Object.fromEntries([...counts].map(([name, count]) => [name, { ms: 0, count }]));
      counts = new Map();
      return out;
    },
  };
}
