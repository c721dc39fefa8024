// The Node.js SDK's cost per call with the real `openai` and `@anthropic-ai/sdk` clients and
// no network: each client is given an in-process `fetch` that answers at once with a fixed
// response, so what is left is the client's own work plus, on the wrapped side, the SDK's (the
// wrapper, the observed promise, the queued build and its Avro encoding on the sender's timer,
// the events sent to the real broker by the sender's worker thread).
//
//   (cd bench/node && npm ci) && node bench/node/inprocess.mjs [--side tokenline|openllmetry|openllmetry-enrich]
//       [--rounds 10] [--calls 2000]
//       [--caller] [--sdk producer_sdk/node/dist/esm] [--only scenario,...]
//
// --caller (Tokenline): the caller's path alone: the sender's queue is replaced by an array the
// bench empties after each timed chunk of 100 wrapped calls, so no event is built nor sent and
// what is timed is what runs inside the wrapped call and as the caller awaits it (the queued
// call included). --only "openai chat;anthropic messages": those scenarios alone.
// --sdk: the SDK build to load (a directory holding index.js), to set two builds side by side.
//
// --side openllmetry: the same with OpenLLMetry's instrumentation (as runner.mjs sets it up:
// BatchSpanProcessor → InMemorySpanExporter), unwrapped = the classes' own methods saved before
// it patched them. --side openllmetry-enrich: the same with `enrichTokens: true` (its OpenAI
// instrumentation then counts a stream's tokens with tiktoken; by default it records none for a
// stream). Run each side in a process of its own, back to back.
//
// Scenarios: OpenAI chat, Anthropic messages, an OpenAI stream (the SSE chunks the emulator
// sends, one body chunk each), the same stream with the caller asking for the usage chunk on
// both sides (like for like: the anchor gets the chunk too), and "usage chunk alone": no SDK on
// either side, a stream that asks for the usage chunk against one that does not, i.e. what the
// openai package's own parsing of that one chunk costs.
//
// Plain and wrapped calls alternate in rounds; each side's figure is its fastest round's mean
// (the least disturbed by other work on the machine), added = wrapped - plain. Events go to a
// fresh topic on --bootstrap, else TOKENLINE_TEST_KAFKA_BOOTSTRAP.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    side: { type: "string", default: "tokenline" },
    rounds: { type: "string", default: "10" },
    calls: { type: "string", default: "2000" },
    bootstrap: { type: "string", default: process.env.TOKENLINE_TEST_KAFKA_BOOTSTRAP ?? "" },
    caller: { type: "boolean", default: false },
    sdk: { type: "string", default: "" },
    only: { type: "string", default: "" },
  },
});
const require = createRequire(import.meta.url);
const OpenAI = require("openai");
const Anthropic = require("@anthropic-ai/sdk");
const repo = fileURLToPath(new URL("../../", import.meta.url));

/** Tokenline: `wrap` on the wrapped side, events to a fresh topic on the real broker. */
async function tokenline() {
  if (!args.bootstrap) throw new Error("--bootstrap or TOKENLINE_TEST_KAFKA_BOOTSTRAP: the Kafka broker the SDK sends to");
  const code = "import sys; from tests._kafka import new_topic; print(new_topic(sys.argv[1], 'bench-node-inprocess'))";
  const made = spawnSync(join(repo, ".venv", "bin", "python"), ["-c", code, args.bootstrap], { cwd: repo, encoding: "utf8" });
  if (made.status !== 0) throw new Error(made.stderr);
  const dir = args.sdk ? join(process.cwd(), args.sdk) : join(repo, "producer_sdk", "node", "dist", "esm");
  const sdk = await import(pathToFileURL(join(dir, "index.js")).href);
  const rt = await sdk.configure({ tenantId: "bench", bootstrapServers: args.bootstrap, topic: made.stdout.trim(), detectHost: false });
  // --caller: the queued calls are held (never built nor sent) and let go after each chunk
  const held = [];
  if (args.caller) rt.sender.enqueue = (pending) => void held.push(pending);
  return {
    wrap: (client) => sdk.wrap(client),
    unwrap: (client) => client,
    afterWrapped() {
      held.length = 0;
    },
    async done() {
      const left = await sdk.flush(30_000);
      console.log(`sent ${JSON.stringify(sdk.stats())}, ${left} left`);
      await sdk.close(5_000);
    },
  };
}

/** OpenLLMetry: the classes patched; the unwrapped side calls their saved own methods. */
function openllmetry(config = {}) {
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } = require("@opentelemetry/sdk-trace-base");
  const { OpenAIInstrumentation } = require("@traceloop/instrumentation-openai");
  const { AnthropicInstrumentation } = require("@traceloop/instrumentation-anthropic");
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  const chat = OpenAI.OpenAI.Chat.Completions.prototype.create;
  const messages = Anthropic.Anthropic.Messages.prototype.create;
  for (const Instrumentation of [OpenAIInstrumentation, AnthropicInstrumentation]) {
    const instrumentation = new Instrumentation(config);
    instrumentation.setTracerProvider(provider);
    instrumentation.manuallyInstrument(Instrumentation === OpenAIInstrumentation ? OpenAI.OpenAI : Anthropic);
  }
  if (OpenAI.OpenAI.Chat.Completions.prototype.create === chat) throw new Error("openai not instrumented");
  if (Anthropic.Anthropic.Messages.prototype.create === messages) throw new Error("anthropic not instrumented");
  return {
    wrap: (client) => client,
    afterWrapped: () => undefined,
    unwrap(client) {
      if (client.chat) client.chat.completions.create = chat;
      else client.messages.create = messages;
      return client;
    },
    async done() {
      await provider.forceFlush();
      const spans = exporter.getFinishedSpans();
      const counted = spans.filter((span) => span.attributes["gen_ai.usage.output_tokens"] !== undefined).length;
      console.log(`${spans.length} spans exported, ${counted} with output token counts`);
    },
  };
}

// openllmetry-enrich: its OpenAI instrumentation counting a stream's tokens (tiktoken), which
// by default it does not do at all
const sides = { tokenline, openllmetry, "openllmetry-enrich": () => openllmetry({ enrichTokens: true }) };
if (!(args.side in sides)) throw new Error(`--side tokenline|openllmetry|openllmetry-enrich, not ${args.side}`);
const side = await sides[args.side]();

/** A `fetch` that answers every request at once with `body` (JSON). */
function answering(body) {
  const text = JSON.stringify(body);
  const headers = { "content-type": "application/json", "request-id": "req-bench", "x-request-id": "req-bench" };
  return async () => new Response(text, { status: 200, headers });
}

const chatFetch = answering({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1,
  model: "gpt-4o-mini",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 },
});
const messagesFetch = answering({
  id: "msg_bench",
  type: "message",
  role: "assistant",
  model: "claude-sonnet-4-5",
  content: [{ type: "text", text: "Hello" }],
  stop_reason: "end_turn",
  usage: { input_tokens: 12, output_tokens: 2, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
});
/**
 * A `fetch` for chat completions: JSON, or for `stream: true` the SSE chunks the emulator
 * sends (role, three pieces, finish; with `stream_options.include_usage`, `usage: null` on
 * each and a last `choices: []` chunk with the usage, as OpenAI does), one body chunk each.
 */
async function chatAnswer(_url, init) {
  const body = JSON.parse(init.body);
  if (body.stream !== true) return chatFetch();
  const usage = body.stream_options?.include_usage === true;
  const base = { id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1, model: "gpt-4o-mini", ...(usage ? { usage: null } : {}) };
  const choice = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const chunks = [choice({ role: "assistant", content: "" }), ...["Hel", "lo", "!"].map((content) => choice({ content })), choice({}, "stop")];
  if (usage) chunks.push({ ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 } });
  const events = [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"].map((e) => new TextEncoder().encode(e));
  const stream = new ReadableStream({
    pull(controller) {
      const next = events.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
  });
  return new Response(stream, { status: 200, headers: { "content-type": "text/event-stream", "x-request-id": "req-bench" } });
}
const openai = () => new OpenAI({ apiKey: "k", baseURL: "http://bench.invalid/v1", fetch: chatAnswer, maxRetries: 0 });
const anthropic = () => new Anthropic({ apiKey: "k", baseURL: "http://bench.invalid", fetch: messagesFetch, maxRetries: 0 });
const plain = { openai: side.unwrap(openai()), anthropic: side.unwrap(anthropic()) };
const wrapped = { openai: side.wrap(openai()), anthropic: side.wrap(anthropic()) };

const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello to the benchmark" }] };
const MESSAGES = { model: "claude-sonnet-4-5", max_tokens: 32, messages: [{ role: "user", content: "Say hello" }] };
const scenarios = {
  "openai chat": (c) => c.openai.chat.completions.create(CHAT),
  "anthropic messages": (c) => c.anthropic.messages.create(MESSAGES),
  "openai stream": async (c) => {
    for await (const _chunk of await c.openai.chat.completions.create({ ...CHAT, stream: true }));
  },
  // the caller asks for the usage chunk itself, on both sides
  "stream, usage asked": async (c) => {
    const options = { stream_options: { include_usage: true } };
    for await (const _chunk of await c.openai.chat.completions.create({ ...CHAT, stream: true, ...options }));
  },
  // no SDK on either side: an unwrapped stream that asks for the usage chunk, against one that
  // does not (what the SDK's request for it costs the openai package before any SDK work)
  "usage chunk alone": async (c) => {
    const options = c === wrapped ? { stream_options: { include_usage: true } } : {};
    for await (const _chunk of await plain.openai.chat.completions.create({ ...CHAT, stream: true, ...options }));
  },
};

console.log(`${args.side}${args.caller ? " (caller's path alone: nothing built nor sent)" : ""}${args.sdk ? ` [${args.sdk}]` : ""}: fastest of ${args.rounds} rounds of ${args.calls} calls, µs per call`);
const CHUNK = 100;
const only = args.only ? args.only.split(";") : null;
for (const [name, fn] of Object.entries(scenarios)) {
  if (only !== null && !only.includes(name)) continue;
  const best = { plain: Infinity, wrapped: Infinity };
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [which, client] of Object.entries({ plain, wrapped })) {
      for (let i = 0; i < 200; i++) await fn(client);
      // timed in chunks of 100 (--caller: the held calls let go after each, untimed)
      let ns = 0n;
      for (let done = 0; done < Number(args.calls); done += CHUNK) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < CHUNK; i++) await fn(client);
        ns += process.hrtime.bigint() - start;
        if (client === wrapped) side.afterWrapped();
      }
      best[which] = Math.min(best[which], Number(ns) / Number(args.calls) / 1000);
    }
  }
  const f = (x) => x.toFixed(2).padStart(7);
  console.log(`${name.padEnd(20)} plain ${f(best.plain)}  wrapped ${f(best.wrapped)}  added ${f(best.wrapped - best.plain)}`);
}
await side.done();
