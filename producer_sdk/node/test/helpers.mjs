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
