// The Node.js SDK's sender pass on the application's thread, per event: building each queued
// call's event, its Avro encoding, and handing the batch to the Kafka worker thread (what runs
// on the sender's timer, off the caller's path but on the event loop), with the real broker.
//
//   node bench/node/sendpass.mjs [--events 5000] [--rounds 10] [--sdk producer_sdk/node/dist/esm]
//
// Each round queues --events calls with `record()` (untimed), then `flush()`es them: the event
// loop's active time during the flush (performance.eventLoopUtilization(), the main thread
// only: the worker thread's kafkajs work and the wait for the broker's acknowledgements are not
// in it) divided by the events. Prints each round's µs per event, the fastest and the median.
// Events go to a fresh topic on --bootstrap, else TOKENLINE_TEST_KAFKA_BOOTSTRAP.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "5000" },
    rounds: { type: "string", default: "10" },
    sdk: { type: "string", default: "" },
    bootstrap: { type: "string", default: process.env.TOKENLINE_TEST_KAFKA_BOOTSTRAP ?? "" },
  },
});
if (!args.bootstrap) throw new Error("--bootstrap or TOKENLINE_TEST_KAFKA_BOOTSTRAP: the Kafka broker the SDK sends to");
const repo = fileURLToPath(new URL("../../", import.meta.url));
const code = "import sys; from tests._kafka import new_topic; print(new_topic(sys.argv[1], 'bench-node-sendpass'))";
const made = spawnSync(join(repo, ".venv", "bin", "python"), ["-c", code, args.bootstrap], { cwd: repo, encoding: "utf8" });
if (made.status !== 0) throw new Error(made.stderr);
const dir = args.sdk ? join(process.cwd(), args.sdk) : join(repo, "producer_sdk", "node", "dist", "esm");
const sdk = await import(pathToFileURL(join(dir, "index.js")).href);
// a long send interval: nothing is sent while a round's calls are queued
await sdk.configure({
  tenantId: "bench",
  project: "sendpass",
  bootstrapServers: args.bootstrap,
  topic: made.stdout.trim(),
  sendIntervalMs: 3_600_000,
  detectHost: true,
});

const events = Number(args.events);
const usage = { input_tokens: 12, output_tokens: 2 };
const perEvent = [];
for (let round = 0; round <= Number(args.rounds); round++) {
  for (let i = 0; i < events; i++) {
    sdk.record({ provider: "openai", operation: "chat", model: "gpt-4o-mini", responseModel: "gpt-4o-mini-2024-07-18", userId: "u-1", latencyMs: 812, usage });
  }
  const before = performance.eventLoopUtilization();
  const left = await sdk.flush(60_000);
  const used = performance.eventLoopUtilization(before);
  if (left !== 0) throw new Error(`${left} events not sent`);
  if (round > 0) perEvent.push((used.active * 1000) / events); // round 0 warms up (connects)
}
const sorted = [...perEvent].sort((a, b) => a - b);
const f = (x) => x.toFixed(2);
console.log(`sender pass on the main thread, µs per event (${events} events a round): ${perEvent.map(f).join(" ")}`);
console.log(`fastest ${f(sorted[0])}, median ${f(sorted[sorted.length >> 1])}; ${JSON.stringify(sdk.stats())}`);
await sdk.close(5_000);
