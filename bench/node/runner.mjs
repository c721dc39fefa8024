// One side of bench/node/overhead.mjs, in a process of its own: times wrapped and unwrapped
// calls against the emulator and prints the raw per-call nanoseconds as JSON.
// argv: tokenline|openllmetry|openllmetry-enrich|none, emulator URL, calls, block, warmup
// [, bootstrap, topic]. openllmetry-enrich: OpenLLMetry's OpenAI instrumentation with
// `enrichTokens: true` (it counts a stream's tokens with tiktoken; by default it records none),
// the OpenAI stream alone.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [side, url, callsArg, blockArg, warmupArg, bootstrap, topic] = process.argv.slice(2);
const calls = Number(callsArg);
const block = Number(blockArg);
const warmup = Number(warmupArg);

const OpenAI = require("openai");
const Anthropic = require("@anthropic-ai/sdk");

const openaiClient = () => new OpenAI({ baseURL: `${url}/v1`, apiKey: "k", maxRetries: 0 });
const anthropicClient = () => new Anthropic({ baseURL: url, apiKey: "k", maxRetries: 0 });

let wrapped;
let plain;
if (side === "tokenline") {
  const sdk = await import("../../producer_sdk/node/dist/esm/index.js");
  await sdk.configure({ tenantId: "bench", project: "overhead", bootstrapServers: bootstrap, topic, detectHost: true });
  wrapped = { openai: sdk.wrap(openaiClient()), anthropic: sdk.wrap(anthropicClient()) };
  plain = { openai: openaiClient(), anthropic: anthropicClient() };
  process.on("beforeExit", () => {
    process.stderr.write(`tokenline: ${JSON.stringify(sdk.stats())}\n`);
  });
} else if (side === "none") {
  // The control: no SDK on either side, two sets of unwrapped clients (the bench's own noise).
  wrapped = { openai: openaiClient(), anthropic: anthropicClient() };
  plain = { openai: openaiClient(), anthropic: anthropicClient() };
} else if (side === "openllmetry" || side === "openllmetry-enrich") {
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } = require("@opentelemetry/sdk-trace-base");
  const { OpenAIInstrumentation } = require("@traceloop/instrumentation-openai");
  const { AnthropicInstrumentation } = require("@traceloop/instrumentation-anthropic");
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  // Unwrapped: the same classes' own methods, saved before the instrumentation patches them.
  const originals = {
    chat: OpenAI.OpenAI.Chat.Completions.prototype.create,
    messages: Anthropic.Anthropic.Messages.prototype.create,
  };
  const config = side === "openllmetry-enrich" ? { enrichTokens: true } : {};
  for (const Instrumentation of [OpenAIInstrumentation, AnthropicInstrumentation]) {
    const instrumentation = new Instrumentation(config);
    instrumentation.setTracerProvider(provider);
    instrumentation.manuallyInstrument(Instrumentation === OpenAIInstrumentation ? OpenAI.OpenAI : Anthropic);
  }
  if (OpenAI.OpenAI.Chat.Completions.prototype.create === originals.chat) throw new Error("openai not instrumented");
  if (Anthropic.Anthropic.Messages.prototype.create === originals.messages) throw new Error("anthropic not instrumented");
  wrapped = { openai: openaiClient(), anthropic: anthropicClient() };
  plain = { openai: openaiClient(), anthropic: anthropicClient() };
  plain.openai.chat.completions.create = originals.chat;
  plain.anthropic.messages.create = originals.messages;
  let reported = false;
  process.on("beforeExit", async () => {
    if (reported) return;
    reported = true;
    await provider.forceFlush(); // after the timing: the batch processor's last spans
    const spans = exporter.getFinishedSpans();
    // spans with token counts (a stream's only with enrichTokens: 0.27.0 never reads stream usage)
    const counted = spans.filter((span) => span.attributes["gen_ai.usage.output_tokens"] !== undefined).length;
    process.stderr.write(`${side}: ${spans.length} spans exported, ${counted} with output token counts\n`);
  });
} else {
  throw new Error(`unknown side ${side}`);
}

const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello to the benchmark" }] };
const MESSAGES = { model: "claude-sonnet-4-5", max_tokens: 32, messages: [{ role: "user", content: "Say hello" }] };

const scenarios = {
  "openai chat": (c) => c.openai.chat.completions.create(CHAT),
  "openai stream": async (c) => {
    for await (const _chunk of await c.openai.chat.completions.create({ ...CHAT, stream: true }));
  },
  "anthropic messages": (c) => c.anthropic.messages.create(MESSAGES),
};
if (side === "openllmetry-enrich") {
  // the anchor that counts a stream's tokens: the stream scenario alone
  delete scenarios["openai chat"];
  delete scenarios["anthropic messages"];
}
if (side === "tokenline") {
  // The SDK asks for the usage chunk on the caller's behalf: the same stream, against an
  // unwrapped baseline that asks for it too (parsing that chunk is the openai package's work).
  scenarios["stream vs +usage"] = async (c) => {
    const extra = c === plain ? { stream_options: { include_usage: true } } : {};
    for await (const _chunk of await c.openai.chat.completions.create({ ...CHAT, stream: true, ...extra }));
  };
  // The usage chunk by itself, no SDK on either side: an unwrapped stream that asks for it
  // against one that does not (what the SDK's request costs before any of its own work).
  scenarios["usage chunk alone"] = async (c) => {
    const extra = c === wrapped ? { stream_options: { include_usage: true } } : {};
    for await (const _chunk of await plain.openai.chat.completions.create({ ...CHAT, stream: true, ...extra }));
  };
}

async function timed(fn, client) {
  const start = process.hrtime.bigint();
  await fn(client);
  return Number(process.hrtime.bigint() - start);
}

const results = {};
for (const [name, fn] of Object.entries(scenarios)) {
  for (let i = 0; i < warmup; i++) {
    await fn(wrapped);
    await fn(plain);
  }
  const times = { wrapped: [], plain: [], wrappedCpu: [], plainCpu: [] };
  for (let done = 0; done < calls; done += block) {
    const order = Math.random() < 0.5 ? ["wrapped", "plain"] : ["plain", "wrapped"];
    for (const side of order) {
      const client = side === "wrapped" ? wrapped : plain;
      const cpu = process.cpuUsage();
      for (let i = 0; i < block; i++) times[side].push(await timed(fn, client));
      const used = process.cpuUsage(cpu);
      times[`${side}Cpu`].push((used.user + used.system) / block); // µs of the process per call
    }
  }
  results[name] = times;
}
process.stdout.write(JSON.stringify(results));
