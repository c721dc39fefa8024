/**
 * OpenAI and Azure OpenAI (the `openai` package), as the Python SDK's providers/_openai.py.
 *
 * Cached reads and cache writes are inside the prompt/input count; reasoning is inside the
 * completion/output count. So plain input = prompt - cached - cache writes, and visible
 * output = completion - reasoning. Streams report usage only when asked
 * (`stream_options.include_usage`): the SDK asks, and hides the usage-only chunk from a caller
 * who did not. A stream that ends without it leaves the usage unset (`usage_source` "none").
 * On Azure, `model` names the deployment.
 */
import type { Call } from "../call.js";
import { count, usageVector } from "../usage.js";
import type { Method, StreamSpec } from "../wrapping.js";

const field = (obj: unknown, name: string): unknown =>
  obj !== null && typeof obj === "object" ? (obj as Record<string, unknown>)[name] : undefined;
const text = (value: unknown): string | null => (typeof value === "string" && value !== "" ? value : null);

function begin(call: Call, body: Record<string, unknown>): Record<string, unknown> {
  call.requestModel = text(body.model);
  if (call.provider === "azure_openai") call.deployment = call.requestModel;
  if (body.stream !== true || call.operation === "responses") return body;
  const options = body.stream_options;
  if (field(options, "include_usage") === true) return body;
  const given = options !== null && typeof options === "object" ? options : {};
  return { ...body, stream_options: { ...given, include_usage: true } };
}

function readUsage(call: Call, usage: unknown, inputs: string, outputs: string): void {
  const prompt = count(usage, inputs);
  const cached = count(usage, `${inputs}_details`, "cached_tokens");
  const writes = count(usage, `${inputs}_details`, "cache_write_tokens");
  const produced = count(usage, outputs);
  const reasoning = count(usage, `${outputs}_details`, "reasoning_tokens");
  call.usage = usageVector({
    inputTokens: prompt - cached - writes,
    cacheRead: cached,
    cacheWrite: writes,
    outputTokens: produced - reasoning,
    reasoningTokens: reasoning,
    providerTotal: field(usage, "total_tokens") !== undefined ? count(usage, "total_tokens") : null,
  });
  call.usageSource = "reported";
}

const chatUsage = (call: Call, usage: unknown): void => readUsage(call, usage, "prompt_tokens", "completion_tokens");
const responsesUsage = (call: Call, usage: unknown): void => readUsage(call, usage, "input_tokens", "output_tokens");

function finisher(read: (call: Call, usage: unknown) => void) {
  return (call: Call, result: unknown): void => {
    call.responseModel = text(field(result, "model"));
    call.providerRequestId = text(field(result, "_request_id")) ?? text(field(result, "id"));
    const usage = field(result, "usage");
    if (usage !== undefined && usage !== null) read(call, usage);
  };
}

function chatStream(call: Call, body: Record<string, unknown>): StreamSpec {
  const asked = field(body.stream_options, "include_usage") === true;
  let found: unknown = null;
  return {
    mayHide: !asked,
    onChunk(c, chunk) {
      if (!c.responseModel) {
        c.responseModel = text(field(chunk, "model"));
        c.providerRequestId = text(field(chunk, "id")) ?? c.providerRequestId;
      }
      const usage = field(chunk, "usage");
      if (usage === undefined || usage === null) return true;
      found = usage;
      const choices = field(chunk, "choices");
      return asked || (Array.isArray(choices) && choices.length > 0);
    },
    onEnd(c) {
      if (found !== null) chatUsage(c, found);
    },
  };
}

const responsesStream: StreamSpec = {
  onChunk(call, event) {
    const response = field(event, "response");
    if (response !== undefined && response !== null) {
      call.responseModel = text(field(response, "model")) ?? call.responseModel;
      call.providerRequestId = text(field(response, "id")) ?? call.providerRequestId;
      const usage = field(response, "usage");
      if (usage !== undefined && usage !== null) responsesUsage(call, usage);
    }
    return true;
  },
};

export const CHAT: Method = { operation: "chat", begin, finish: finisher(chatUsage), stream: (c, b) => chatStream(c, b) };
export const COMPLETION: Method = { ...CHAT, operation: "completion" };
export const RESPONSES: Method = {
  operation: "responses",
  begin,
  finish: finisher(responsesUsage),
  stream: () => responsesStream,
};
export const EMBEDDING: Method = { operation: "embedding", begin, finish: finisher(chatUsage) };

/** resource path → method, as reached from the client. */
export const METHODS: [string[], string, Method][] = [
  [["chat", "completions"], "create", CHAT],
  [["completions"], "create", COMPLETION],
  [["responses"], "create", RESPONSES],
  [["embeddings"], "create", EMBEDDING],
];
