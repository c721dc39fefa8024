// Node.js SDK overhead: the latency a wrapper adds to one LLM call, Tokenline beside
// OpenLLMetry's Node.js instrumentation (@traceloop/instrumentation-openai and -anthropic,
// OpenTelemetry BatchSpanProcessor → InMemorySpanExporter), in one run.
//
//   (cd bench/node && npm ci) && node bench/node/overhead.mjs [--calls 2000] [--block 25] [--warmup 200]
//
// Starts the in-repo provider emulator (`tokenline emulator`) in a process of its own; each
// side runs in its own Node.js process (runner.mjs) with the same openai and anthropic
// packages. Tokenline sends to the real Kafka broker named by --bootstrap or
// TOKENLINE_TEST_KAFKA_BOOTSTRAP (a fresh topic). Unwrapped: for Tokenline a client not
// wrapped; for OpenLLMetry the same class's method saved before it was patched. Wrapped and
// unwrapped calls alternate in blocks of --block calls, the order of each pair of blocks drawn
// at random. Reported in µs: median of each side, added median = median(wrapped) -
// median(unwrapped), paired = median of the differences of the i-th calls of neighbouring
// blocks, added p99, and CPU added = the difference of the per-block medians of the process's
// CPU time per call (all its threads; the sender's and exporter's work included): a figure
// scheduling noise on a shared machine does not inflate. Ratio = OpenLLMetry's added median /
// Tokenline's. "stream vs +usage": Tokenline's stream against an unwrapped stream that also
// asks for the usage chunk. "usage chunk alone": no SDK at all, an unwrapped stream asking for
// the usage chunk against one that does not: the part of the stream's figure that is the
// chunk itself (the emulator sending it, the openai package parsing it). "no SDK (A/A)": the
// same measure with no SDK on either side (runner.mjs's third side), run beside the two: what
// the bench reports for nothing at all, its noise floor in this run.
// The Anthropic client is 0.71.0 here (the tests use 1.x): OpenLLMetry's Anthropic
// instrumentation 0.27.0 patches `Anthropic.Completions`, which 1.x no longer has.
// Goal: Tokenline's added median ≤ 1/10 of OpenLLMetry's.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = fileURLToPath(new URL(".", import.meta.url));
const repo = join(here, "..", "..");
const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "2000" },
    block: { type: "string", default: "25" },
    warmup: { type: "string", default: "200" },
    bootstrap: { type: "string", default: process.env.TOKENLINE_TEST_KAFKA_BOOTSTRAP ?? "" },
  },
});
if (!args.bootstrap) throw new Error("--bootstrap or TOKENLINE_TEST_KAFKA_BOOTSTRAP: the Kafka broker Tokenline sends to");

function startEmulator() {
  const child = spawn(join(repo, ".venv", "bin", "tokenline"), ["emulator", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve({ url: m[1], stop: () => child.kill("SIGTERM") });
    });
    child.on("exit", (code) => reject(new Error(`emulator exited ${code}`)));
  });
}

function newTopic() {
  const code = "import sys; from tests._kafka import new_topic; print(new_topic(sys.argv[1], 'bench-node'))";
  const run = spawnSync(join(repo, ".venv", "bin", "python"), ["-c", code, args.bootstrap], { cwd: repo, encoding: "utf8" });
  if (run.status !== 0) throw new Error(run.stderr);
  return run.stdout.trim();
}

function runSide(side, url, topic) {
  const run = spawnSync(
    process.execPath,
    [join(here, "runner.mjs"), side, url, args.calls, args.block, args.warmup, args.bootstrap, topic],
    { encoding: "utf8", maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "inherit"] },
  );
  if (run.status !== 0) throw new Error(`${side} runner failed (${run.status})`);
  return JSON.parse(run.stdout);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const p99 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))];

function summarize({ wrapped, plain, wrappedCpu, plainCpu }) {
  return {
    cpu: median(wrappedCpu) - median(plainCpu),
    plain: median(plain) / 1000,
    added: (median(wrapped) - median(plain)) / 1000,
    paired: median(wrapped.map((w, i) => w - plain[i])) / 1000,
    addedP99: (p99(wrapped) - p99(plain)) / 1000,
  };
}

const emulator = await startEmulator();
let ours;
let theirs;
let enriched;
let control;
try {
  const topic = newTopic();
  ours = runSide("tokenline", emulator.url, topic);
  theirs = runSide("openllmetry", emulator.url, topic);
  enriched = runSide("openllmetry-enrich", emulator.url, topic);
  control = runSide("none", emulator.url, topic);
} finally {
  emulator.stop();
}

const f = (x) => x.toFixed(1).padStart(9);
console.log(`calls per side and scenario: ${args.calls}, blocks of ${args.block}; µs`);
console.log(`${"".padEnd(20)} ${"unwrapped".padStart(9)} │ ${"Tokenline added".padStart(29)} │ ${"OpenLLMetry added".padStart(29)} │ ratio`);
console.log(`${"".padEnd(20)} ${"median".padStart(9)} │ ${"median".padStart(9)} ${"paired".padStart(9)} ${"p99".padStart(9)} │ ${"median".padStart(9)} ${"paired".padStart(9)} ${"p99".padStart(9)} │`);
let met = true;
for (const name of Object.keys(ours)) {
  const a = summarize(ours[name]);
  if (!(name in theirs)) {
    const note = name === "usage chunk alone" ? "no SDK: +include_usage vs plain, unwrapped" : "Tokenline only: the unwrapped stream asks for usage too";
    console.log(`${name.padEnd(20)} ${f(a.plain)} │ ${f(a.added)} ${f(a.paired)} ${f(a.addedP99)} │ (${note})`);
    continue;
  }
  const b = summarize(theirs[name]);
  const ratio = a.added > 0 ? `${(b.added / a.added).toFixed(1)}x` : "ours ≤ 0 (noise)";
  if (!(a.added <= b.added / 10)) met = false;
  console.log(`${name.padEnd(20)} ${f(a.plain)} │ ${f(a.added)} ${f(a.paired)} ${f(a.addedP99)} │ ${f(b.added)} ${f(b.paired)} ${f(b.addedP99)} │ ${ratio}`);
}
// The anchor that counts a stream's tokens (enrichTokens: tiktoken over the streamed text),
// beside the default one (which records no token counts for a stream at all).
for (const name of Object.keys(enriched)) {
  const a = summarize(ours[name]);
  const b = summarize(enriched[name]);
  const ratio = a.added > 0 ? `${(b.added / a.added).toFixed(1)}x` : "ours ≤ 0 (noise)";
  const label = name === "openai stream" ? "stream (enrichTokens)" : `${name} (enrichTokens)`;
  console.log(`${label.padEnd(20)} ${f(a.plain)} │ ${f(a.added)} ${f(a.paired)} ${f(a.addedP99)} │ ${f(b.added)} ${f(b.paired)} ${f(b.addedP99)} │ ${ratio}`);
}
console.log("no SDK (A/A), added median (paired), the bench's noise floor in this run:");
for (const name of Object.keys(control)) {
  const c = summarize(control[name]);
  console.log(`  ${name.padEnd(20)} ${f(c.added)} ${f(c.paired)}`);
}
console.log("process CPU added per call (µs), Tokenline / OpenLLMetry [/ OpenLLMetry with enrichTokens]:");
for (const name of Object.keys(ours)) {
  const b = name in theirs ? summarize(theirs[name]).cpu.toFixed(1) : "-";
  const c = name in enriched ? ` / ${summarize(enriched[name]).cpu.toFixed(1).padStart(8)}` : "";
  console.log(`  ${name.padEnd(20)} ${summarize(ours[name]).cpu.toFixed(1).padStart(8)} / ${b.padStart(8)}${c}`);
}
console.log(`goal: Tokenline added median ≤ 1/10 of OpenLLMetry's in every scenario: ${met ? "met" : "NOT met"}`);
