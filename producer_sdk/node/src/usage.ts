/** The canonical usage vector: disjoint buckets, checked (as the Python SDK's _usage.py). */
import type { Usage } from "./types.js";

/** The stream ended before Anthropic's message_delta: the output count never came. */
export const UNFINISHED = "output_tokens not reported: the stream ended before message_delta";

/** The integer at `obj.path...`, 0 when any step is missing or not an integer. */
export function count(obj: unknown, ...path: string[]): number {
  let value: unknown = obj;
  for (const name of path) {
    if (value === null || typeof value !== "object") return 0;
    value = (value as Record<string, unknown>)[name];
  }
  return Number.isSafeInteger(value) ? (value as number) : 0;
}

/** The integer at `obj[name]`, or null when it is absent or not an integer. */
export function optional(obj: unknown, name: string): number | null {
  if (obj === null || typeof obj !== "object") return null;
  const value = (obj as Record<string, unknown>)[name];
  return Number.isSafeInteger(value) ? (value as number) : null;
}

export function emptyUsage(): Usage {
  return {
    input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_write_input_tokens: 0,
    cache_write_5m_input_tokens: null,
    cache_write_1h_input_tokens: null,
    output_tokens: 0,
    reasoning_tokens: 0,
    provider_total_tokens: null,
    mismatch: null,
  };
}

export interface UsageCounts {
  inputTokens: number;
  cacheRead?: number;
  cacheWrite?: number;
  cacheWrite5m?: number | null;
  cacheWrite1h?: number | null;
  outputTokens?: number;
  reasoningTokens?: number;
  providerTotal?: number | null;
  /** name → [our sum, another source's figure] (e.g. Bedrock's token-count headers). */
  checks?: Record<string, [number, number]>;
}

/**
 * Disjoint buckets. A bucket below zero, a TTL split that does not add up to the writes, a
 * provider total the buckets do not reach, or a failed check is reported in `mismatch`,
 * never hidden.
 */
export function usageVector(c: UsageCounts): Usage {
  const cacheRead = c.cacheRead ?? 0;
  const cacheWrite = c.cacheWrite ?? 0;
  const output = c.outputTokens ?? 0;
  const reasoning = c.reasoningTokens ?? 0;
  const split5m = c.cacheWrite5m ?? null;
  const split1h = c.cacheWrite1h ?? null;
  const total = c.providerTotal ?? null;
  const usage: Usage = {
    input_tokens: c.inputTokens,
    cache_read_input_tokens: cacheRead,
    cache_write_input_tokens: cacheWrite,
    cache_write_5m_input_tokens: split5m,
    cache_write_1h_input_tokens: split1h,
    output_tokens: output,
    reasoning_tokens: reasoning,
    provider_total_tokens: total,
    mismatch: null,
  };
  const ours = c.inputTokens + cacheRead + cacheWrite + output + reasoning;
  const problems: string[] = [];
  for (const [name, value] of [
    ["input_tokens", c.inputTokens],
    ["output_tokens", output],
    ["cache_read", cacheRead],
    ["cache_write", cacheWrite],
    ["reasoning_tokens", reasoning],
  ] as const) {
    if (value < 0) problems.push(`${name}=${value} < 0`);
  }
  if (split5m !== null || split1h !== null) {
    const split = (split5m ?? 0) + (split1h ?? 0);
    if (split !== cacheWrite) problems.push(`cache write split ${split} != cache writes ${cacheWrite}`);
  }
  if (total !== null && ours !== total) {
    problems.push(`buckets sum to ${ours}, provider total is ${total}`);
  }
  for (const [name, [mine, theirs]] of Object.entries(c.checks ?? {})) {
    if (mine !== theirs) problems.push(`${name}: buckets give ${mine}, provider reports ${theirs}`);
  }
  usage.mismatch = problems.length > 0 ? problems.join("; ") : null;
  return usage;
}
