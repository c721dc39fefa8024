/**
 * Google Gemini through `@google/genai` (`GoogleGenAI`), as the Python SDK's
 * providers/_genai.py: `models.generateContent` and `models.generateContentStream` (chats made
 * by `chats.create` send through the same `models` object, so they are metered too).
 *
 * Usage (`usageMetadata`): `cachedContentTokenCount` is inside `promptTokenCount`;
 * `thoughtsTokenCount` is outside `candidatesTokenCount`; `toolUsePromptTokenCount` is outside
 * `promptTokenCount` and billed as input. So plain input = prompt - cached + tool-use prompt,
 * cache reads = cached, output = candidates, reasoning = thoughts, and the buckets must add up
 * to `totalTokenCount`. A `usageMetadata` without any count (Vertex AI's first streamed chunk)
 * reports nothing.
 *
 * Streamed chunks carry cumulative usage: the latest replaces what came before. The stream is
 * the async generator the client returns, metered in place (its own `next`, `return` and
 * `throw`), so the caller iterates the very object it would have had.
 *
 * `models.embedContent` is an `embedding` event, as in the Python SDK: the input tokens from a
 * `usageMetadata.promptTokenCount` when the response has one, else the sum of the embeddings'
 * `statistics.tokenCount` (Vertex AI's `:predict` reports one a text; the client also puts
 * Vertex AI `:embedContent`'s `promptTokenCount` there) when every embedding has one. The
 * Gemini API's `:batchEmbedContents` reports no count: the event has `usage_source = "none"`.
 *
 * A client made with `vertexai: true` is reported as `vertex_ai` (Vertex AI's prices), else
 * `gemini`.
 */
import type { Call } from "../call.js";
import type { Provider } from "../types.js";
import { count, usageVector } from "../usage.js";
import type { Method, StreamSpec } from "../wrapping.js";

type Obj = Record<string, unknown>;
const isObject = (value: unknown): value is Obj => value !== null && typeof value === "object";
const int = (value: unknown): number | null => (Number.isSafeInteger(value) ? (value as number) : null);

export function providerOf(client: object): Provider {
  return (client as { vertexai?: unknown }).vertexai === true ? "vertex_ai" : "gemini";
}

function begin(call: Call, params: Obj): Obj {
  call.requestModel = typeof params.model === "string" ? params.model : null;
  return params;
}

const COUNTS = ["promptTokenCount", "candidatesTokenCount", "totalTokenCount"];

/** The canonical vector from a generateContent `usageMetadata`; nothing when it has no count. */
export function generateUsage(call: Call, usage: Obj): void {
  if (COUNTS.every((name) => usage[name] === undefined || usage[name] === null)) return;
  const prompt = count(usage, "promptTokenCount");
  const cached = count(usage, "cachedContentTokenCount");
  call.usage = usageVector({
    inputTokens: prompt - cached + count(usage, "toolUsePromptTokenCount"),
    cacheRead: cached,
    outputTokens: count(usage, "candidatesTokenCount"),
    reasoningTokens: count(usage, "thoughtsTokenCount"),
    providerTotal: int(usage.totalTokenCount),
  });
  call.usageSource = "reported";
}

export function finish(call: Call, response: unknown): void {
  if (!isObject(response)) return;
  if (typeof response.modelVersion === "string" && response.modelVersion) call.responseModel = response.modelVersion;
  if (typeof response.responseId === "string" && response.responseId) call.providerRequestId = response.responseId;
  if (isObject(response.usageMetadata)) generateUsage(call, response.usageMetadata);
}

/** An embedContent response: its prompt count, else every embedding's own token count. */
export function finishEmbed(call: Call, response: unknown): void {
  if (!isObject(response)) return;
  const usage = response.usageMetadata;
  if (isObject(usage) && int(usage.promptTokenCount) !== null) {
    call.usage = usageVector({ inputTokens: usage.promptTokenCount as number, providerTotal: int(usage.totalTokenCount) });
    call.usageSource = "reported";
    return;
  }
  const embeddings = Array.isArray(response.embeddings) ? (response.embeddings as unknown[]) : [];
  const counts = embeddings.map((e) => (isObject(e) && isObject(e.statistics) ? e.statistics.tokenCount : undefined));
  if (counts.length === 0 || !counts.every((c) => typeof c === "number" && Number.isFinite(c))) return;
  call.usage = usageVector({ inputTokens: (counts as number[]).reduce((sum, c) => sum + Math.trunc(c), 0) });
  call.usageSource = "reported";
}

type Gen = AsyncIterator<unknown> & { [key: string]: unknown };

/** Meter the async generator itself: its `next`, `return` and `throw` become the meter's. */
function attachGenerator(result: unknown, meter: (inner: AsyncIterator<unknown>) => AsyncIterator<unknown>): boolean {
  if (!isObject(result) || typeof result.next !== "function") return false;
  const gen = result as Gen;
  const [next, ret, thr] = [gen.next, gen.return, gen.throw] as ((...a: unknown[]) => Promise<IteratorResult<unknown>>)[];
  const inner: AsyncIterator<unknown> = {
    next: (...a: unknown[]) => (next as (...a: unknown[]) => Promise<IteratorResult<unknown>>).apply(gen, a),
    ...(ret ? { return: (...a: unknown[]) => ret.apply(gen, a) } : {}),
    ...(thr ? { throw: (...a: unknown[]) => thr.apply(gen, a) } : {}),
  };
  const metered = meter(inner);
  // the meter's methods are its prototype's: bound to it, as they become the generator's own
  gen.next = metered.next.bind(metered);
  if (metered.return) gen.return = metered.return.bind(metered);
  if (metered.throw) gen.throw = metered.throw.bind(metered);
  return true;
}

const stream: StreamSpec = {
  onChunk(call, chunk) {
    finish(call, chunk); // cumulative: the latest usage replaces the earlier one
    return true;
  },
  attach: attachGenerator,
};

const always = (): boolean => true;

export const GENERATE: Method = { operation: "chat", begin, finish };
export const GENERATE_STREAM: Method = { operation: "chat", begin, finish, stream: () => stream, streams: always };

export const EMBED: Method = { operation: "embedding", begin, finish: finishEmbed };

export const METHODS: [string[], string, Method][] = [
  [["models"], "generateContent", GENERATE],
  [["models"], "generateContentStream", GENERATE_STREAM],
  [["models"], "embedContent", EMBED],
];
