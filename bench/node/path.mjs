// The Node.js SDK's own metering path, in one process, without a network: µs that wrap()
// adds to a call of a stand-in OpenAI client whose create() resolves at once (chat: one
// response; stream: 20 chunks from an async generator, plus the usage chunk when asked). What
// it measures is the SDK's work in this process while the events go to the real broker
// (--bootstrap, else TOKENLINE_TEST_KAFKA_BOOTSTRAP; a fresh topic): the wrapper, the stream
// proxy, the sender's building and encoding on its timer, and whatever of Kafka's work runs on
// the application's thread. --sdk points at another build (an older commit's) to compare.
//
//   node bench/node/path.mjs [--sdk producer_sdk/node/dist/esm/index.js] [--rounds 8] [--calls 2000]
//
// Plain and wrapped calls alternate in rounds; each side's figure is its fastest round's mean
// (the least disturbed by other work on the machine), added = wrapped - plain.
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    sdk: { type: "string", default: fileURLToPath(new URL("../../producer_sdk/node/dist/esm/index.js", import.meta.url)) },
    rounds: { type: "string", default: "8" },
    calls: { type: "string", default: "2000" },
    bootstrap: { type: "string", default: process.env.TOKENLINE_TEST_KAFKA_BOOTSTRAP ?? "" },
  },
});
const repo = fileURLToPath(new URL("../../", import.meta.url));
if (!args.bootstrap) throw new Error("--bootstrap or TOKENLINE_TEST_KAFKA_BOOTSTRAP: the Kafka broker the SDK sends to");
const made = spawnSync(
  join(repo, ".venv", "bin", "python"),
  ["-c", "import sys; from tests._kafka import new_topic; print(new_topic(sys.argv[1], 'bench-node-path'))", args.bootstrap],
  { cwd: repo, encoding: "utf8" },
);
if (made.status !== 0) throw new Error(made.stderr);
const sdk = await import(pathToFileURL(resolve(args.sdk)).href);
await sdk.configure({
  tenantId: "bench",
  bootstrapServers: args.bootstrap,
  topic: made.stdout.trim(),
  spoolEnabled: false,
  detectHost: false,
  queueMaxMessages: 100_000_000,
});

/** An APIPromise stand-in: then() goes through parse(), as in the openai package. */
function apiPromise(value) {
  const promise = { parse: () => Promise.resolve(value), then: (ok, failed) => promise.parse().then(ok, failed) };
  return promise;
}

class OpenAI {
  chat = { completions: { create: (body) => this.create(body) } };

  create(body) {
    if (!body.stream) {
      return apiPromise({ id: "r", model: "gpt-4o-mini", usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 } });
    }
    const chunks = Array.from({ length: 20 }, () => ({ id: "c", model: "gpt-4o-mini", choices: [{ delta: { content: "x" } }] }));
    if (body.stream_options?.include_usage) {
      chunks.push({ id: "c", model: "gpt-4o-mini", choices: [], usage: { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 } });
    }
    return apiPromise({
      async *iterator() {
        yield* chunks;
      },
      [Symbol.asyncIterator]() {
        return this.iterator();
      },
    });
  }
}

const plain = new OpenAI();
const wrapped = sdk.wrap(new OpenAI());
const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };
const USAGE = { stream_options: { include_usage: true } };
const scenarios = {
  "chat": (c) => c.chat.completions.create(CHAT),
  "stream": async (c) => {
    for await (const _ of await c.chat.completions.create({ ...CHAT, stream: true }));
  },
  "stream, usage asked": async (c) => {
    for await (const _ of await c.chat.completions.create({ ...CHAT, stream: true, ...USAGE }));
  },
};

console.log(`${args.sdk}: fastest of ${args.rounds} rounds of ${args.calls} calls, µs per call`);
for (const [name, fn] of Object.entries(scenarios)) {
  const best = { plain: Infinity, wrapped: Infinity };
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const [side, client] of Object.entries({ plain, wrapped })) {
      for (let i = 0; i < 500; i++) await fn(client);
      const start = process.hrtime.bigint();
      for (let i = 0; i < Number(args.calls); i++) await fn(client);
      best[side] = Math.min(best[side], Number(process.hrtime.bigint() - start) / Number(args.calls) / 1000);
    }
  }
  const f = (x) => x.toFixed(2).padStart(7);
  console.log(`${name.padEnd(20)} plain ${f(best.plain)}  wrapped ${f(best.wrapped)}  added ${f(best.wrapped - best.plain)}`);
}
const left = await sdk.flush(30_000);
console.log(`sent ${JSON.stringify(sdk.stats())}, ${left} left`);
await sdk.close(5_000);
