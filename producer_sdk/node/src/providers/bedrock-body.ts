/**
 * The usage an InvokeModel body reports about itself, per model family, and its cross-check
 * (as the Python SDK's providers/_bedrock_body.py, whose docstring gives the families):
 *
 * - Anthropic (Messages): `usage` with `input_tokens` (cache excluded), cache reads, cache
 *   writes and their TTL split, `output_tokens` (thinking included; split out when
 *   `output_tokens_details.thinking_tokens` is given);
 * - Amazon Nova: `usage` with `inputTokens`, `outputTokens`, `totalTokens` and
 *   `cacheRead/WriteInputTokenCount`;
 * - OpenAI-style bodies (AI21 Jamba, gpt-oss): `prompt_tokens` (cached inside) and
 *   `completion_tokens` (reasoning inside);
 * - Meta Llama: `prompt_token_count`, `generation_token_count`;
 * - Amazon Titan: `inputTextTokenCount`, `results[].tokenCount`;
 * - Mistral, Cohere and others: none.
 *
 * The body wins when it has counts; the `x-amzn-bedrock-*` headers (or a stream's
 * `amazon-bedrock-invocationMetrics`) are checked against it, a difference kept in `mismatch`.
 */
import type { Usage } from "../types.js";
import { count, usageVector } from "../usage.js";

const int = (value: unknown): number | null => (Number.isSafeInteger(value) ? (value as number) : null);
const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** Disjoint token counts as a body reported them. */
export class Counts {
  input = 0;
  cacheRead = 0;
  cacheWrite = 0;
  split: [number, number] | null = null;
  output = 0;
  reasoning = 0;
  total: number | null = null;

  constructor(init: Partial<Counts> = {}) {
    Object.assign(this, init);
  }

  /** The canonical usage vector, with `checks` against another source's figures. */
  vector(checks?: Record<string, [number, number]>): Usage {
    return usageVector({
      inputTokens: this.input,
      cacheRead: this.cacheRead,
      cacheWrite: this.cacheWrite,
      cacheWrite5m: this.split?.[0] ?? null,
      cacheWrite1h: this.split?.[1] ?? null,
      outputTokens: this.output,
      reasoningTokens: this.reasoning,
      providerTotal: this.total,
      ...(checks !== undefined ? { checks } : {}),
    });
  }
}

/** Replace the counts an Anthropic `usage` gives (a stream's deltas are cumulative). */
export function anthropicUpdate(counts: Counts, usage: Record<string, unknown>): void {
  for (const [name, key] of [
    ["input", "input_tokens"],
    ["cacheRead", "cache_read_input_tokens"],
    ["cacheWrite", "cache_creation_input_tokens"],
  ] as const) {
    const value = int(usage[key]);
    if (value !== null) counts[name] = value;
  }
  const creation = usage.cache_creation;
  if (isObject(creation)) {
    counts.split = [count(creation, "ephemeral_5m_input_tokens"), count(creation, "ephemeral_1h_input_tokens")];
  }
  const produced = int(usage.output_tokens);
  if (produced !== null) {
    const thinking = count(usage, "output_tokens_details", "thinking_tokens");
    counts.output = produced - thinking;
    counts.reasoning = thinking;
  }
}

function fromUsage(usage: Record<string, unknown>): Counts | null {
  if ("input_tokens" in usage || "output_tokens" in usage) {
    const counts = new Counts(); // Anthropic
    anthropicUpdate(counts, usage);
    return counts;
  }
  if ("inputTokens" in usage) {
    return new Counts({
      input: count(usage, "inputTokens"), // Amazon Nova
      cacheRead: count(usage, "cacheReadInputTokenCount"),
      cacheWrite: count(usage, "cacheWriteInputTokenCount"),
      output: count(usage, "outputTokens"),
      total: int(usage.totalTokens),
    });
  }
  if ("prompt_tokens" in usage) {
    const cached = count(usage, "prompt_tokens_details", "cached_tokens"); // OpenAI-style
    const reasoning = count(usage, "completion_tokens_details", "reasoning_tokens");
    return new Counts({
      input: count(usage, "prompt_tokens") - cached,
      cacheRead: cached,
      output: count(usage, "completion_tokens") - reasoning,
      reasoning,
      total: int(usage.total_tokens),
    });
  }
  return null;
}

/** The counts a (parsed) InvokeModel body reports; null when it reports none. */
export function bodyCounts(body: unknown): Counts | null {
  if (!isObject(body)) return null;
  if (isObject(body.usage)) return fromUsage(body.usage);
  if (int(body.prompt_token_count) !== null) {
    return new Counts({ input: count(body, "prompt_token_count"), output: count(body, "generation_token_count") });
  }
  if (int(body.inputTextTokenCount) !== null) {
    const results = body.results;
    const produced = Array.isArray(results) ? results.reduce((sum: number, r) => sum + count(r, "tokenCount"), 0) : 0;
    return new Counts({ input: count(body, "inputTextTokenCount"), output: produced });
  }
  return null;
}

/** bucket → [the other source's name for it, its figure or null]. */
export type Figures = Record<"input" | "output" | "cacheRead" | "cacheWrite", [string, number | null]>;

/**
 * Checks of the body's buckets against another source's figures; a figure it does not give
 * (null) is not checked. Output is checked with reasoning included, as every source counts it.
 */
export function checkAgainst(counts: Counts, figures: Figures): Record<string, [number, number]> {
  const mine = {
    input: counts.input,
    output: counts.output + counts.reasoning,
    cacheRead: counts.cacheRead,
    cacheWrite: counts.cacheWrite,
  };
  const checks: Record<string, [number, number]> = {};
  for (const bucket of ["input", "output", "cacheRead", "cacheWrite"] as const) {
    const [name, figure] = figures[bucket];
    if (figure !== null) checks[name] = [mine[bucket], figure];
  }
  return checks;
}
