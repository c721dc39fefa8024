// The HTTP transport (`transport: "http"`) against a real `tokenline api serve` and the real
// broker: events land once, decoded by the Python codec; an API outage spools them and they
// arrive once after it; a process that records and returns loses nothing; a bad key is a stats
// error, never an exception; an event the API refuses is counted, the rest delivered.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, close, configure, flush, record, stats } from "../dist/esm/index.js";
import { apiDatabase, apiServer, dropApiDatabase, NO_API, newTopic, readEvents, tempDir } from "./helpers.mjs";

const CHILD = fileURLToPath(new URL("./fixtures/child.mjs", import.meta.url));

test("transport http without URL or key lists both, with the variables to set", async () => {
  await assert.rejects(configure({ transport: "http", tenantId: "acme" }), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.problems.map((p) => p.split(":")[0]), ["ingestUrl", "ingestKey"]);
    assert.match(err.problems[0], /TOKENLINE_INGEST_URL/);
    assert.match(err.problems[1], /TOKENLINE_INGEST_KEY/);
    return true;
  });
});

describe("HTTP transport", { skip: NO_API, timeout: 300_000 }, () => {
  let db;
  let exitDb;
  before(() => {
    db = apiDatabase("acme");
    exitDb = apiDatabase("exit");
  });
  after(() => {
    dropApiDatabase(db.url);
    dropApiDatabase(exitDb.url);
  });

  async function withApi(run) {
    const topic = newTopic("node-http");
    const api = apiServer(db.url, topic);
    await api.start();
    try {
      await run(api, topic);
    } finally {
      await close(5_000);
      await api.stop();
    }
  }

  const http = (api, spoolDir, more = {}) => ({
    transport: "http", ingestUrl: api.url, ingestKey: db.key, tenantId: "acme", spoolDir, detectHost: false, ...more,
  });

  test("events land on the raw topic once, every field as recorded", async () => {
    await withApi(async (api, topic) => {
      await configure(http(api, tempDir(), { project: "checkout", ingestBatchMax: 7 }));
      const session = randomUUID();
      for (let i = 0; i < 30; i++) {
        record({ provider: "anthropic", operation: "chat", model: "claude-sonnet-4", sessionId: session, userId: `u-${i}`,
          tags: { route: "/chat" }, usage: { input_tokens: 100 + i, output_tokens: 7, cache_read_input_tokens: 3 } });
      }
      assert.equal(await flush(60_000), 0);
      const s = stats();
      assert.deepEqual([s.sent, s.spooled, s.refused, s.transportError], [30, 0, 0, null]);
      const events = readEvents(topic, 30);
      assert.equal(new Set(events.map((e) => e.event_id)).size, 30);
      assert.equal(events.length, 30);
      for (const e of events) {
        const i = Number(e.user_id.slice(2));
        assert.equal(e.tenant_id, "acme");
        assert.equal(e.project, "checkout");
        assert.equal(e.session_id, session);
        assert.deepEqual(e.tags, { route: "/chat" });
        assert.equal(e.usage.input_tokens, 100 + i);
        assert.equal(e.usage.cache_read_input_tokens, 3);
        assert.equal(e.host.language, "node");
      }
      assert.deepEqual(events.map((e) => e.producer_seq).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i));
    });
  });

  test("API stopped: N events spooled; API back: all N delivered once", async () => {
    await withApi(async (api, topic) => {
      const spoolDir = tempDir();
      await configure(http(api, spoolDir, { requestTimeoutMs: 2_000 }));
      await api.stop();
      for (let i = 0; i < 40; i++) record({ provider: "openai", operation: "chat", model: "gpt-4o", userId: `u-${i}`, usage: { input_tokens: i } });
      assert.equal(await flush(30_000), 0);
      const down = stats();
      assert.deepEqual([down.sent, down.spooled, down.dropped], [0, 40, 0]);
      assert.match(down.transportError, /no answer from/);
      assert.ok(readdirSync(join(spoolDir, "http")).length > 0);
      await api.start();
      await new Promise((r) => setTimeout(r, 1_100)); // the transport's first pause (1 s) ends
      record({ provider: "openai", operation: "chat", model: "gpt-4o", userId: "u-40", usage: { input_tokens: 40 } }); // a call wakes the sender
      assert.equal(await flush(60_000), 0);
      const up = stats();
      assert.deepEqual([up.sent, up.resent, up.transportError], [1, 40, null]);
      const events = readEvents(topic, 41);
      assert.equal(events.length, 41);
      assert.equal(new Set(events.map((e) => e.event_id)).size, 41);
    });
  });

  for (const [mode, expected] of [["return", { code: 0, signal: null }], ["sigterm", { code: null, signal: "SIGTERM" }], ["exit", { code: 0, signal: null }]]) {
    test(`a process that records and ends (${mode}) loses nothing`, async () => {
      const topic = newTopic("node-http-exit");
      const api = apiServer(exitDb.url, topic);
      await api.start();
      try {
        const spoolDir = tempDir();
        const env = { ...process.env, TOKENLINE_TRANSPORT: "http", TOKENLINE_INGEST_URL: api.url, TOKENLINE_INGEST_KEY: exitDb.key };
        const proc = spawn(process.execPath, [CHILD, mode, "unused:9092", "unused", spoolDir, "25", randomUUID()], {
          env, stdio: ["ignore", "pipe", "inherit"],
        });
        proc.stdout.on("data", (data) => {
          if (String(data).includes("ready")) proc.kill("SIGTERM");
        });
        const status = await new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal })));
        assert.deepEqual(status, expected);
        if (mode === "exit") {
          // process.exit(): nothing asynchronous ran; the JSON records are in the spool, and
          // the next process sends them.
          assert.ok(readdirSync(join(spoolDir, "http")).length > 0);
          await configure({ transport: "http", ingestUrl: api.url, ingestKey: exitDb.key, tenantId: "exit", spoolDir, detectHost: false });
          assert.equal(await flush(30_000), 0);
          assert.equal(stats().resent, 25);
          await close(5_000);
        }
        const events = readEvents(topic, 25);
        assert.equal(events.length, 25);
        assert.equal(new Set(events.map((e) => e.event_id)).size, 25);
        assert.deepEqual(readdirSync(join(spoolDir, "http")), []);
      } finally {
        await api.stop();
      }
    });
  }

  test("a bad key is a stats error; the events stay in the spool", async () => {
    await withApi(async (api) => {
      await configure(http(api, tempDir(), { ingestKey: "tlk_nosuchkey_secret" }));
      for (let i = 0; i < 5; i++) record({ provider: "openai", operation: "chat", model: "gpt-4o", usage: { input_tokens: i } }); // never throws
      assert.equal(await flush(30_000), 0);
      const s = stats();
      assert.equal(s.transportError, "401 unknown or revoked API key");
      assert.deepEqual([s.sent, s.spooled, s.dropped], [0, 5, 0]);
    });
  });

  test("an event of another tenant is refused and counted; the rest of its batch lands", async () => {
    await withApi(async (api, topic) => {
      await configure(http(api, tempDir(), { sendIntervalMs: 60_000 }));
      record({ provider: "openai", operation: "chat", model: "gpt-4o", userId: "a", usage: { input_tokens: 1 } });
      record({ provider: "openai", operation: "chat", model: "gpt-4o", userId: "b", tenantId: "globex", usage: { input_tokens: 2 } });
      record({ provider: "openai", operation: "chat", model: "gpt-4o", userId: "c", usage: { input_tokens: 3 } });
      assert.equal(await flush(30_000), 0);
      const s = stats();
      assert.deepEqual([s.sent, s.refused, s.spooled], [2, 1, 0]);
      assert.deepEqual(readEvents(topic, 2).map((e) => e.user_id).sort(), ["a", "c"]);
    });
  });
});
