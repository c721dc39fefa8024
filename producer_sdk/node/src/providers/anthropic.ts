/**
 * Anthropic (`@anthropic-ai/sdk`): messages.create, plain and streamed, and the
 * `messages.stream()` helper (which calls the wrapped `create` on the same resource), as the
 * Python SDK's providers/_anthropic.py.
 *
 * `input_tokens` excludes cache reads and cache writes, so the three map straight onto
 * disjoint buckets; the write split by TTL is `cache_creation.ephemeral_5m/1h_input_tokens`.
 * `output_tokens` includes thinking: `output_tokens_details.thinking_tokens`, when reported,
 * becomes `reasoning_tokens`. In a stream, `message_start` carries the full usage and
 * `message_delta` cumulative counts that replace, never add. A stream that ends before its
 * `message_delta` keeps its input counts, says so in `mismatch`, and has `usage_source` "none".
 */
import type { Call } from "../call.js";
import { count, optional, UNFINISHED, usageVector } from "../usage.js";
import type { Method, StreamSpec } from "../wrapping.js";

const field = (obj: unknown, name: string): unknown =>
  obj !== null && typeof obj === "object" ? (obj as Record<string, unknown>)[name] : undefined;
const text = (value: unknown): string | null => (typeof value === "string" && value !== "" ? value : null);

class Counts {
  input = 0;
  cacheRead = 0;
  cacheWrite = 0;
  split: [number, number] | null = null;
  output = 0;
  thinking = 0;

  update(usage: unknown): void {
    for (const [key, name] of [
      ["input", "input_tokens"],
      ["cacheRead", "cache_read_input_tokens"],
      ["cacheWrite", "cache_creation_input_tokens"],
      ["output", "output_tokens"],
    ] as const) {
      const value = optional(usage, name);
      if (value !== null) this[key] = value;
    }
    const details = field(usage, "output_tokens_details");
    if (details !== undefined && details !== null) this.thinking = count(details, "thinking_tokens");
    const creation = field(usage, "cache_creation");
    if (creation !== undefined && creation !== null) {
      this.split = [count(creation, "ephemeral_5m_input_tokens"), count(creation, "ephemeral_1h_input_tokens")];
    }
  }

  record(call: Call, final = true): void {
    const usage = usageVector({
      inputTokens: this.input,
      cacheRead: this.cacheRead,
      cacheWrite: this.cacheWrite,
      cacheWrite5m: this.split?.[0] ?? null,
      cacheWrite1h: this.split?.[1] ?? null,
      outputTokens: this.output - this.thinking,
      reasoningTokens: this.thinking,
    });
    call.usage = usage;
    call.usageSource = "reported";
    if (!final) {
      usage.mismatch = UNFINISHED;
      call.usageSource = "none";
    }
  }
}

function begin(call: Call, body: Record<string, unknown>): Record<string, unknown> {
  call.requestModel = text(body.model);
  return body;
}

function finish(call: Call, result: unknown): void {
  call.responseModel = text(field(result, "model"));
  call.providerRequestId = text(field(result, "_request_id")) ?? text(field(result, "id"));
  const usage = field(result, "usage");
  if (usage !== undefined && usage !== null) {
    const counts = new Counts();
    counts.update(usage);
    counts.record(call);
  }
}

function stream(): StreamSpec {
  const counts = new Counts();
  const seen = new Set<string>();
  return {
    onChunk(call, event) {
      const kind = field(event, "type");
      if (kind === "message_start") {
        const message = field(event, "message");
        call.responseModel = text(field(message, "model")) ?? call.responseModel;
        call.providerRequestId ??= text(field(message, "id"));
        const usage = field(message, "usage");
        if (usage !== undefined && usage !== null) {
          counts.update(usage);
          seen.add(kind);
        }
      } else if (kind === "message_delta") {
        const usage = field(event, "usage");
        if (usage !== undefined && usage !== null) {
          counts.update(usage); // cumulative: replaces, never adds
          seen.add(kind);
        }
      }
      return true;
    },
    onEnd(call) {
      if (seen.size > 0) counts.record(call, seen.has("message_delta"));
    },
  };
}

export const MESSAGES: Method = { operation: "chat", begin, finish, stream: () => stream() };

export const METHODS: [string[], string, Method][] = [
  [["messages"], "create", MESSAGES],
  [["beta", "messages"], "create", MESSAGES],
];
