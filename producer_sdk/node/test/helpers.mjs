// Test helpers: the provider emulator (`tokenline emulator`), fresh topics on the real broker,
// and events read back from Kafka and decoded by the Python codec (an independent reader).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const PYTHON = join(REPO, ".venv", "bin", "python");
export const BOOTSTRAP = process.env.TOKENLINE_TEST_KAFKA_BOOTSTRAP;
export const NO_KAFKA = BOOTSTRAP ? false : "TOKENLINE_TEST_KAFKA_BOOTSTRAP is not set";

function python(code, ...args) {
  const run = spawnSync(PYTHON, ["-c", code, ...args], { cwd: REPO, encoding: "utf8", timeout: 120_000, maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`python failed: ${run.stderr}`);
  return run.stdout;
}

/** A fresh topic on the real broker. */
export function newTopic(prefix = "node-sdk") {
  return python("import sys; from tests._kafka import new_topic; print(new_topic(sys.argv[1], sys.argv[2]))", BOOTSTRAP, prefix).trim();
}

const READ = `
import json, sys
from tests._kafka import read_events
events = read_events(sys.argv[1], sys.argv[2], int(sys.argv[3]))
for e in events:
    e = dict(e, event_id=str(e["event_id"]), producer_id=str(e["producer_id"]), occurred_at=e["occurred_at"].isoformat())
    print(json.dumps(e))
`;

/** Every UsageEvent on `topic` (at least `expected`, then a short settle), decoded by Python. */
export function readEvents(topic, expected) {
  return python(READ, BOOTSTRAP, topic, String(expected))
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

export function tempDir(prefix = "tokenline-node-") {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Start `tokenline emulator` on a free port; resolves to { url, stop }. */
export function startEmulator() {
  const child = spawn(join(REPO, ".venv", "bin", "tokenline"), ["emulator", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (data) => {
      out += data;
      const found = /listening on (\S+)/.exec(out);
      if (found) resolve({ url: found[1], stop: () => child.kill("SIGTERM") });
    });
    child.on("exit", (code) => reject(new Error(`emulator exited (${code}): ${out}`)));
  });
}

export const DATABASE = process.env.TOKENLINE_TEST_DATABASE_URL;
export const NO_API = BOOTSTRAP && DATABASE ? false : "TOKENLINE_TEST_KAFKA_BOOTSTRAP or TOKENLINE_TEST_DATABASE_URL is not set";

/** A fresh migrated database for the API, and an ingest key of `tenant` there. */
export function apiDatabase(tenant) {
  const code = `
import sys
from tests.integration.sdk._api_server import create_key, migrated_database
url = migrated_database(sys.argv[1])
print(url)
print(create_key(url, sys.argv[2]))
`;
  const [url, key] = python(code, DATABASE, tenant).trim().split("\n");
  return { url, key };
}

/** Drop a database `apiDatabase` made. */
export function dropApiDatabase(url) {
  const code = "import sys; from tests._db import drop_database; drop_database(sys.argv[1], sys.argv[2].rsplit('/', 1)[-1])";
  python(code, DATABASE, url);
}

function freePort() {
  return Number(python("from tokenline.dev._proc import free_port; print(free_port())").trim());
}

/** `tokenline api serve` producing to `topic`; resolves once /readyz answers 200. */
export function apiServer(database, topic) {
  const port = freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TOKENLINE_")));
  Object.assign(env, {
    TOKENLINE_DATABASE_URL: database,
    TOKENLINE_BOOTSTRAP_SERVERS: BOOTSTRAP,
    TOKENLINE_RAW_TOPIC: topic,
    TOKENLINE_API_PORT: String(port),
    TOKENLINE_API_RATE_LIMIT_PER_MINUTE: "1000000",
  });
  const url = `http://127.0.0.1:${port}`;
  let child = null;
  const server = {
    url,
    async start() {
      child = spawn(join(REPO, ".venv", "bin", "tokenline"), ["api", "serve"], { env, stdio: "ignore" });
      const deadline = Date.now() + 120_000; // a readiness wait, not a measure
      for (;;) {
        try {
          if ((await fetch(`${url}/readyz`)).status === 200) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline || child.exitCode !== null) throw new Error("tokenline api serve did not start");
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      if (child === null) return;
      const ended = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await ended;
      child = null;
    },
  };
  return server;
}
