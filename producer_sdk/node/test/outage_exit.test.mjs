// Outage: Kafka unreachable → events spooled to disk → re-sent once when Kafka answers.
// Exit: a process that ends by returning, by SIGTERM or by process.exit() loses no event.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { close, configure, flush, record, stats } from "../dist/esm/index.js";
import { BOOTSTRAP, NO_KAFKA, newTopic, readEvents, tempDir } from "./helpers.mjs";

const N = 25;
const CHILD = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url));

/** Nothing listens on port 1 (privileged, unused): the broker is unreachable there. */
const DEAD = "127.0.0.1:1";

function users(events) {
  return events.map((e) => e.user_id).sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
}
const expectedUsers = (n) => Array.from({ length: n }, (_, i) => `u-${i}`);

describe("outage and exit", { skip: NO_KAFKA }, () => {
  test("broker unreachable: N events spooled, then re-sent once by the next runtime", async () => {
    const topic = newTopic("node-outage");
    const spoolDir = tempDir();
    const session = randomUUID();
    await configure({ tenantId: "outage", bootstrapServers: DEAD, topic, spoolDir, detectHost: false, requestTimeoutMs: 1_000 });
    for (let i = 0; i < N; i++) {
      record({ provider: "anthropic", operation: "chat", sessionId: session, userId: `u-${i}`, usage: { input_tokens: 10 + i } });
    }
    assert.equal(await flush(30_000), 0);
    const down = stats();
    assert.equal(down.sent, 0);
    assert.equal(down.spooled, N);
    assert.equal(down.dropped, 0);
    assert.ok(readdirSync(spoolDir).length > 0);
    await close(1_000);

    await configure({ tenantId: "outage", bootstrapServers: BOOTSTRAP, topic, spoolDir, detectHost: false });
    assert.equal(await flush(30_000), 0);
    assert.equal(stats().resent, N);
    assert.deepEqual(readdirSync(spoolDir), []);
    await close(5_000);

    const events = readEvents(topic, N);
    assert.equal(events.length, N); // each once: nothing lost, nothing sent twice
    assert.deepEqual(users(events), expectedUsers(N));
    assert.equal(new Set(events.map((e) => e.event_id)).size, N);
    assert.ok(events.every((e) => e.session_id === session && e.usage.input_tokens === 10 + Number(e.user_id.slice(2))));
  });

  function child(mode, topic, spoolDir, runId) {
    const proc = spawn(process.execPath, [CHILD, mode, BOOTSTRAP, topic, spoolDir, String(N), runId], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    return new Promise((resolve) => {
      proc.stdout.on("data", (data) => {
        if (String(data).includes("ready")) proc.kill("SIGTERM");
      });
      proc.on("exit", (code, signal) => resolve({ code, signal }));
    });
  }

  test("the event loop empties: beforeExit sends every event; the connection keeps nothing alive", { timeout: 90_000 }, async () => {
    const topic = newTopic("node-exit");
    const spoolDir = tempDir();
    assert.deepEqual(await child("return", topic, spoolDir, randomUUID()), { code: 0, signal: null });
    assert.deepEqual(users(readEvents(topic, N)), expectedUsers(N));
    assert.deepEqual(readdirSync(spoolDir), []);
  });

  test("SIGTERM: the events are sent, then the process ends as SIGTERM ends it", async () => {
    const topic = newTopic("node-exit");
    const spoolDir = tempDir();
    assert.deepEqual(await child("sigterm", topic, spoolDir, randomUUID()), { code: null, signal: "SIGTERM" });
    assert.deepEqual(users(readEvents(topic, N)), expectedUsers(N));
  });

  test("process.exit(): the events go to the spool, and the next process sends them", async () => {
    const topic = newTopic("node-exit");
    const spoolDir = tempDir();
    assert.deepEqual(await child("exit", topic, spoolDir, randomUUID()), { code: 0, signal: null });
    assert.ok(readdirSync(spoolDir).length > 0);
    await configure({ tenantId: "exit", bootstrapServers: BOOTSTRAP, topic, spoolDir, detectHost: false });
    assert.equal(await flush(30_000), 0);
    assert.equal(stats().resent, N);
    await close(5_000);
    assert.deepEqual(users(readEvents(topic, N)), expectedUsers(N));
  });

  test("a burst past Kafka's request size limit (1 MB): sent in several requests, each event once", async () => {
    const burst = 5_000; // about 1.4 MB of events, queued before the sender's first pass
    const topic = newTopic("node-burst");
    const session = randomUUID();
    await configure({ tenantId: "burst", bootstrapServers: BOOTSTRAP, topic, spoolDir: tempDir(), detectHost: false });
    for (let i = 0; i < burst; i++) {
      record({ provider: "openai", operation: "chat", model: "gpt-4o", sessionId: session, userId: `u-${i}`, usage: { input_tokens: i } });
    }
    assert.equal(await flush(60_000), 0);
    const s = stats();
    assert.equal(s.sent, burst);
    assert.equal(s.spooled + s.dropped, 0);
    await close(5_000);
    const events = readEvents(topic, burst);
    assert.equal(events.length, burst);
    assert.deepEqual(users(events), expectedUsers(burst));
  });
});
