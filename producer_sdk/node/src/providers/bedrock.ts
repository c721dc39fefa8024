/**
 * AWS Bedrock through `@aws-sdk/client-bedrock-runtime` (as the Python SDK's
 * providers/_bedrock.py): `client.send(command)` for ConverseCommand, ConverseStreamCommand,
 * InvokeModelCommand and InvokeModelWithResponseStreamCommand (the aggregated `BedrockRuntime`
 * client's methods go through the same `send`); other commands pass through unmetered.
 *
 * - Converse (and the `metadata` event ending ConverseStream): `inputTokens` excludes cache
 *   reads and writes, `totalTokens` includes both and is the provider total;
 *   `cacheDetails` (`{ttl, inputTokens}`) splits writes into 5m/1h. Reasoning stays in output.
 * - InvokeModel: the body's own counts, per model family (bedrock-body.ts), checked against the
 *   `x-amzn-bedrock-{input,output,cache-read-input,cache-write-input}-token-count` response
 *   headers, which are the usage of a body without counts. The SDK does not model those
 *   headers: a middleware on the client keeps them per response (nothing else is changed).
 * - InvokeModelWithResponseStream: Anthropic's `message_start` / `message_delta` chunks give
 *   the model and its counts, checked against the last chunk's
 *   `amazon-bedrock-invocationMetrics`, which are the usage of other families. Only chunks
 *   whose bytes can carry one of them are parsed.
 *
 * `request_model` is `modelId` as given, also the `deployment` when it names an inference
 * profile (a `us.`/`eu.`/… prefix) or an ARN; `response_model` is the model an Anthropic body
 * names; `region` is the client's. Operation `embedding` for embedding models, else `chat`.
 * Streams: the output's `stream` (Converse) or `body` (Invoke) iterable meters in place.
 */
import type { Call } from "../call.js";
import { count, UNFINISHED, usageVector } from "../usage.js";
import type { Chooser, Method, StreamSpec } from "../wrapping.js";
import { anthropicUpdate, bodyCounts, checkAgainst, Counts, type Figures } from "./bedrock-body.js";

const PROFILE_PREFIXES = ["us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca."];
const METRICS = "amazon-bedrock-invocationMetrics";
const HEADER_BUCKETS = {
  input: "input",
  output: "output",
  cacheRead: "cache-read-input",
  cacheWrite: "cache-write-input",
} as const;
const METRIC_BUCKETS = {
  input: "inputTokenCount",
  output: "outputTokenCount",
  cacheRead: "cacheReadInputTokenCount",
  cacheWrite: "cacheWriteInputTokenCount",
} as const;
/** Bytes only a chunk that can carry usage or the model contains; other chunks are not parsed. */
const USAGE_MARKS = ['"message_start"', '"message_delta"', METRICS].map((mark) => Buffer.from(mark));
const MIDDLEWARE = "tokenlineTokenCountHeaders";

/** The raw response headers of InvokeModel outputs, kept by the client's middleware. */
const HEADERS = new WeakMap<object, Record<string, unknown>>();

type Obj = Record<string, unknown>;
const isObject = (value: unknown): value is Obj => value !== null && typeof value === "object";
const int = (value: unknown): number | null => (Number.isSafeInteger(value) ? (value as number) : null);

function baseModel(modelId: string): string {
  const name = modelId.startsWith("arn:") ? (modelId.split("/").at(-1) as string) : modelId;
  const prefix = PROFILE_PREFIXES.find((p) => name.startsWith(p));
  return prefix ? name.slice(prefix.length) : name;
}

const isProfile = (modelId: string): boolean =>
  modelId.startsWith("arn:") || PROFILE_PREFIXES.some((p) => modelId.startsWith(p));

/** The client's region, resolved once (the SDK's config gives it through an async provider). */
class Region {
  value: string | null = null;
  private pending: Promise<void> | null = null;

  constructor(client: object) {
    const region = (client as { config?: { region?: unknown } }).config?.region;
    if (typeof region === "string") this.value = region;
    else if (typeof region === "function") {
      this.pending = Promise.resolve()
        .then(() => (region as () => unknown)())
        .then(
          (found) => {
            this.value = typeof found === "string" ? found : null;
            this.pending = null;
          },
          () => {
            this.pending = null;
          },
        );
    }
  }

  /** Set `call.region` now, or when the provider answers (before the event is built). */
  into(call: Call): void {
    if (this.pending === null) call.region = this.value;
    else
      void this.pending.then(() => {
        call.region = this.value;
      });
  }
}

function requestId(call: Call, result: unknown): void {
  const meta = isObject(result) ? result.$metadata : undefined;
  const id = isObject(meta) ? meta.requestId : undefined;
  call.providerRequestId = typeof id === "string" ? id : null;
}

function converseUsage(call: Call, usage: unknown): void {
  if (!isObject(usage)) return;
  let split5m: number | null = null;
  let split1h: number | null = null;
  const details = usage.cacheDetails;
  if (Array.isArray(details) && details.length > 0) {
    split5m = details.filter((d) => isObject(d) && d.ttl === "5m").reduce((s: number, d) => s + count(d, "inputTokens"), 0);
    split1h = details.filter((d) => isObject(d) && d.ttl === "1h").reduce((s: number, d) => s + count(d, "inputTokens"), 0);
  }
  call.usage = usageVector({
    inputTokens: count(usage, "inputTokens"),
    cacheRead: count(usage, "cacheReadInputTokens"),
    cacheWrite: count(usage, "cacheWriteInputTokens"),
    cacheWrite5m: split5m,
    cacheWrite1h: split1h,
    outputTokens: count(usage, "outputTokens"),
    providerTotal: int(usage.totalTokens),
  });
  call.usageSource = "reported";
}

export function finishConverse(call: Call, result: unknown): void {
  requestId(call, result);
  if (isObject(result)) converseUsage(call, result.usage);
}

function header(headers: Obj, name: string): number | null {
  const value = headers[`x-amzn-bedrock-${name}-token-count`];
  return typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : null;
}

function parseBody(result: Obj): unknown {
  const body = result.body;
  if (!(body instanceof Uint8Array)) return null;
  if (!String(result.contentType ?? "json").includes("json")) return null;
  try {
    return JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return null; // not JSON: not parsed
  }
}

function finishInvoke(call: Call, result: unknown): void {
  readInvoke(call, result, isObject(result) ? (HEADERS.get(result) ?? {}) : {});
}

/** An InvokeModel output with its raw response `headers`: the model, the checked usage. */
export function readInvoke(call: Call, result: unknown, headers: Obj): void {
  requestId(call, result);
  if (!isObject(result)) return;
  const body = parseBody(result);
  const model = isObject(body) ? body.model : undefined;
  if (typeof model === "string" && model) call.responseModel = model;
  const figures = {} as Figures;
  for (const [bucket, name] of Object.entries(HEADER_BUCKETS) as [keyof Figures, string][]) {
    figures[bucket] = [`x-amzn-bedrock-${name}-token-count`, header(headers, name)];
  }
  const counts = bodyCounts(body);
  if (counts !== null) call.usage = counts.vector(checkAgainst(counts, figures));
  else if (figures.input[1] !== null) {
    call.usage = usageVector({
      inputTokens: figures.input[1],
      cacheRead: figures.cacheRead[1] ?? 0,
      cacheWrite: figures.cacheWrite[1] ?? 0,
      outputTokens: figures.output[1] ?? 0,
    });
  } else return;
  call.usageSource = "reported";
}

/** Meter `result[key]` (an async iterable) in place. */
function attachTo(key: string): StreamSpec["attach"] {
  return (result, meter) => {
    const iterable = isObject(result) ? result[key] : undefined;
    const own = isObject(iterable) ? (iterable as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] : undefined;
    if (typeof own !== "function") return false;
    (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] = function (this: unknown): AsyncIterator<unknown> {
      return meter((own as () => AsyncIterator<unknown>).call(this));
    };
    return true;
  };
}

function converseStream(call: Call, _body: Obj, result: unknown): StreamSpec {
  requestId(call, result);
  return {
    onChunk(c, event) {
      const metadata = isObject(event) ? event.metadata : undefined;
      if (isObject(metadata)) converseUsage(c, metadata.usage);
      return true;
    },
    attach: attachTo("stream"),
  };
}

function chunkBytes(event: unknown): Buffer | null {
  const chunk = isObject(event) ? event.chunk : undefined;
  const bytes = isObject(chunk) ? chunk.bytes : undefined;
  return bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : null;
}

function invokeStream(call: Call, _body: Obj, result: unknown): StreamSpec {
  requestId(call, result);
  const own = new Counts();
  const seen: string[] = [];
  const metrics: Obj = {};
  return {
    onChunk(c, event) {
      const data = chunkBytes(event);
      if (data === null || !USAGE_MARKS.some((mark) => data.includes(mark))) return true;
      const payload: unknown = JSON.parse(data.toString("utf8"));
      if (!isObject(payload) || Array.isArray(payload)) return true;
      const kind = payload.type;
      if (kind === "message_start") {
        const message = isObject(payload.message) ? payload.message : {};
        if (typeof message.model === "string" && message.model) c.responseModel = message.model;
        if (isObject(message.usage)) {
          anthropicUpdate(own, message.usage);
          seen.push(kind);
        }
      } else if (kind === "message_delta" && isObject(payload.usage)) {
        anthropicUpdate(own, payload.usage); // cumulative: replaces, never adds
        seen.push(kind);
      }
      const found = payload[METRICS];
      if (isObject(found)) Object.assign(metrics, found);
      return true;
    },
    onEnd(c) {
      const figures = {} as Figures;
      for (const [bucket, name] of Object.entries(METRIC_BUCKETS) as [keyof Figures, string][]) {
        figures[bucket] = [`${METRICS}.${name}`, int(metrics[name])];
      }
      if (seen.includes("message_delta")) c.usage = own.vector(checkAgainst(own, figures));
      else if (Object.keys(metrics).length > 0) {
        c.usage = usageVector({
          inputTokens: count(metrics, "inputTokenCount"),
          cacheRead: count(metrics, "cacheReadInputTokenCount"),
          cacheWrite: count(metrics, "cacheWriteInputTokenCount"),
          outputTokens: count(metrics, "outputTokenCount"),
        });
      } else if (seen.length > 0) {
        c.usage = own.vector(); // message_start only: its output count is a placeholder
        c.usage.mismatch = UNFINISHED;
        return; // usage_source stays "none"
      } else return;
      c.usageSource = "reported";
    },
    attach: attachTo("body"),
  };
}

const always = (): boolean => true;

/** command class name → how its call is read. */
function methods(region: Region): Record<string, Method> {
  const begin = (call: Call, command: Obj): Obj => {
    region.into(call);
    const modelId = isObject(command.input) ? command.input.modelId : undefined;
    if (typeof modelId === "string") {
      call.requestModel = modelId;
      call.deployment = isProfile(modelId) ? modelId : null;
      call.operation = baseModel(modelId).toLowerCase().includes("embed") ? "embedding" : "chat";
    }
    return command;
  };
  return {
    ConverseCommand: { operation: "chat", begin, finish: finishConverse },
    InvokeModelCommand: { operation: "chat", begin, finish: finishInvoke },
    ConverseStreamCommand: { operation: "chat", begin, finish: finishConverse, stream: converseStream, streams: always },
    InvokeModelWithResponseStreamCommand: {
      operation: "chat",
      begin,
      finish: finishInvoke,
      stream: invokeStream,
      streams: always,
    },
  };
}

/** Keep InvokeModel's raw response headers (the token counts) per output; changes nothing. */
function keepHeaders(client: object): void {
  const stack = (client as { middlewareStack?: { add?: (...args: unknown[]) => void } }).middlewareStack;
  if (typeof stack?.add !== "function") return;
  type Next = (args: unknown) => Promise<{ output?: unknown; response?: { headers?: unknown } }>;
  const middleware =
    (next: Next, context: { commandName?: string }) =>
    async (args: unknown): Promise<unknown> => {
      if (context.commandName !== "InvokeModelCommand") return next(args);
      const out = await next(args);
      const headers = out.response?.headers;
      if (isObject(out.output) && isObject(headers)) HEADERS.set(out.output, headers);
      return out;
    };
  try {
    stack.add(middleware, { step: "deserialize", name: MIDDLEWARE, priority: "high" });
  } catch {
    // already there (the client was wrapped before)
  }
}

/** The `send` chooser of a bedrock-runtime client: the Method by the command's class. */
export function sendChooser(client: object): Chooser {
  keepHeaders(client);
  const table = methods(new Region(client));
  return (args) => {
    if (typeof args.at(-1) === "function") return null; // the callback form: passed through
    const name = (args[0] as { constructor?: { name?: string } } | undefined)?.constructor?.name;
    return name !== undefined && Object.hasOwn(table, name) ? (table[name] as Method) : null;
  };
}
