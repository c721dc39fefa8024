/** Attribution for a block of code, through AsyncLocalStorage (follows promises and timers). */
import { AsyncLocalStorage } from "node:async_hooks";

export interface Attribution {
  tenantId?: string;
  project?: string;
  userId?: string;
  sessionId?: string;
  team?: string;
  tags?: Record<string, string>;
}

const storage = new AsyncLocalStorage<Readonly<Attribution>>();

/**
 * Run `fn` with `attribution` on every call made inside it, awaited work included; nested
 * blocks add to outer ones (tags merge, the innermost value wins).
 */
export function withContext<T>(attribution: Attribution, fn: () => T): T {
  const outer = storage.getStore() ?? {};
  const merged: Attribution = { ...outer };
  for (const [key, value] of Object.entries(attribution)) {
    if (value !== undefined && value !== null && key !== "tags") {
      (merged as Record<string, unknown>)[key] = value;
    }
  }
  if (attribution.tags) merged.tags = { ...outer.tags, ...attribution.tags };
  return storage.run(Object.freeze(merged), fn);
}

/** The attribution in force here. */
export function currentAttribution(): Readonly<Attribution> | undefined {
  return storage.getStore();
}

/** `base` (settings and wrap options) with the block's attribution laid over it. */
export function merged(base: Attribution): Attribution {
  const block = storage.getStore();
  if (!block) return base;
  const out: Attribution = { ...base, ...block };
  if (base.tags || block.tags) out.tags = { ...base.tags, ...block.tags };
  return out;
}
