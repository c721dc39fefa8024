// Unit: the usage vector's checks, attribution blocks, the spool format (against the Python
// SDK's spool), the batch packing for the Kafka worker, track(), and metering failures kept
// away from the caller.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, truncateSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import OpenAI from "openai";
import { configure, currentAttribution, flush, stats, track, withContext, wrap } from "../dist/esm/index.js";
import { DiskSpool, decode } from "../dist/esm/spool.js";
import { Call } from "../dist/esm/call.js";
import { EMBED } from "../dist/esm/providers/genai.js";
import { UNFINISHED, usageVector } from "../dist/esm/usage.js";
import { packRecords, unpackRecords } from "../dist/esm/wire.js";
import { PYTHON, REPO, startEmulator, tempDir } from "./helpers.mjs";

describe("usage vector", () => {
  test("consistent counts: no mismatch", () => {
    const u = usageVector({ inputTokens: 10, cacheRead: 5, outputTokens: 3, reasoningTokens: 2, providerTotal: 20 });
    assert.equal(u.mismatch, null);
  });
  test("a TTL split that does not add up, a short total and a negative bucket are all reported", () => {
    const u = usageVector({ inputTokens: -1, cacheWrite: 10, cacheWrite5m: 4, cacheWrite1h: 5, providerTotal: 100 });
    assert.equal(u.mismatch, "input_tokens=-1 < 0; cache write split 9 != cache writes 10; buckets sum to 9, provider total is 100");
  });
  test("the unfinished-stream note is the Python SDK's", () => {
    const py = spawnSync(PYTHON, ["-c", "from tokenline.sdk.providers._usage import UNFINISHED; print(UNFINISHED)"], { encoding: "utf8" });
    assert.equal(py.stdout.trim(), UNFINISHED);
  });
});

describe("gemini embedContent usage (the Python SDK's cases)", () => {
  const embedded = (response) => {
    const call = new Call("gemini", "embedding", {});
    EMBED.finish(call, response);
    return call;
  };
  test("a usageMetadata's prompt count, or every embedding's own count summed", () => {
    const gemini = { usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 } };
    const vertex = { embeddings: [{ values: [0.1], statistics: { tokenCount: 3.0 } }, { values: [0.2], statistics: { tokenCount: 4 } }] };
    for (const response of [gemini, vertex]) {
      const call = embedded(response);
      assert.equal(call.usage.input_tokens, 7);
      assert.equal(call.usage.output_tokens, 0);
      assert.equal(call.usage.mismatch, null);
      assert.equal(call.usageSource, "reported");
    }
    assert.equal(embedded(gemini).usage.provider_total_tokens, 7);
  });
  test("an embedding without a count: no usage rather than a partial sum", () => {
    const partial = { embeddings: [{ values: [0.1], statistics: { tokenCount: 3 } }, { values: [0.2] }] };
    for (const response of [partial, { embeddings: [] }, { embeddings: [{ values: [0.1] }] }, null]) {
      const call = embedded(response);
      assert.equal(call.usage, null);
      assert.equal(call.usageSource, "none");
    }
  });
});

describe("attribution", () => {
  test("nested blocks merge, tags too; awaited work keeps the block's attribution", async () => {
    await withContext({ userId: "u-1", tags: { a: "1" } }, async () => {
      await withContext({ sessionId: "s-1", tags: { b: "2" } }, async () => {
        await new Promise((r) => setTimeout(r, 1));
        assert.deepEqual({ ...currentAttribution() }, { userId: "u-1", sessionId: "s-1", tags: { a: "1", b: "2" } });
      });
      assert.deepEqual({ ...currentAttribution() }, { userId: "u-1", tags: { a: "1" } });
    });
    assert.equal(currentAttribution(), undefined);
  });
});

describe("disk spool", () => {
  test("reads segments the Python SDK's spool wrote (same record format)", () => {
    const dir = tempDir();
    const code = `
import sys
from pathlib import Path
from tokenline.sdk.emitters import DiskSpool
spool = DiskSpool(Path(sys.argv[1]), 1 << 20)
spool.append(b"tenant-a", b"\\xc3\\x01value-1")
spool.append(None, b"value-2")
spool.close()
`;
    const run = spawnSync(PYTHON, ["-c", code, dir], { cwd: REPO, encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    const files = readdirSync(dir).filter((f) => f.endsWith(".seg"));
    assert.equal(files.length, 1);
    const records = decode(readFileSync(join(dir, files[0])));
    assert.deepEqual(records.map((r) => [r.key?.toString(), r.value.toString("latin1")]), [
      ["tenant-a", "\xc3\x01value-1"],
      [undefined, "value-2"],
    ]);
  });

  test("a torn last record is skipped; past the bound records are dropped and counted", () => {
    const dir = tempDir();
    const spool = new DiskSpool(dir, 200);
    const rec = (i) => ({ key: Buffer.from("k"), value: Buffer.alloc(40, i) });
    assert.equal(spool.append([rec(1), rec(2), rec(3)]), 3); // 3 × 53 bytes
    assert.equal(spool.append([rec(4)]), 0); // 212 > 200
    assert.equal(spool.dropped, 1);
    const path = spool.claim();
    truncateSync(path, statSync(path).size - 5);
    assert.deepEqual(spool.read(path).map((r) => r.value[0]), [1, 2]);
  });
});

describe("never in the caller's way", () => {
  test("track returns what fn returns and throws what it throws", async () => {
    await configure({ tenantId: "t", bootstrapServers: "127.0.0.1:1", spoolEnabled: false, detectHost: false });
    const value = { ok: true };
    assert.equal(track({ extractor: () => ({ input_tokens: 1 }) }, () => value), value);
    const promise = Promise.resolve(7);
    assert.equal(track({}, () => promise), promise);
    const error = new RangeError("boom");
    assert.throws(() => track({}, () => { throw error; }), (e) => e === error);
    await assert.rejects(track({}, () => Promise.reject(error)), (e) => e === error);
  });

  test("with no tenant configured, wrapped calls and streams work and the failure is counted", async () => {
    const emulator = await startEmulator();
    try {
      await configure({ bootstrapServers: "127.0.0.1:1", spoolEnabled: false, detectHost: false });
      const client = wrap(new OpenAI({ baseURL: `${emulator.url}/v1`, apiKey: "k", maxRetries: 0 }));
      const body = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] };
      const result = await client.chat.completions.create(body);
      assert.equal(result.object, "chat.completion");
      let chunks = 0;
      for await (const _ of await client.chat.completions.create({ ...body, stream: true })) chunks++;
      assert.ok(chunks > 0);
      await flush(10_000);
      const s = stats();
      assert.equal(s.buildFailed, 2);
      assert.equal(s.sent, 0);
    } finally {
      emulator.stop();
    }
  });
});

describe("streams metered in place", () => {
  test("a generator stream that fails midway: the caller gets the same object, chunks and error", async () => {
    await configure({ tenantId: "unit", bootstrapServers: "127.0.0.1:1", spoolEnabled: false, detectHost: false });
    const cut = new Error("connection cut");
    async function* chunks() {
      yield { usageMetadata: {} };
      yield { usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 1, totalTokenCount: 4 } };
      throw cut;
    }
    let made;
    // A stand-in for @google/genai's client: generateContentStream resolves to an async generator.
    class GoogleGenAI {
      models = {
        generateContentStream: async () => {
          made = chunks();
          return made;
        },
      };
    }
    const before = stats().errors;
    const stream = await wrap(new GoogleGenAI()).models.generateContentStream({ model: "gemini-2.5-flash" });
    assert.equal(stream, made);
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) seen.push(chunk);
      })(),
      (e) => e === cut,
    );
    assert.equal(seen.length, 2);
    assert.equal(stats().errors, before);
  });
});

describe("a batch packed for the Kafka worker thread", () => {
  test("keys (none among them), empty and pooled values come back byte for byte, in order", () => {
    const records = [
      { key: Buffer.from("tenant-a"), value: Buffer.from([0xc3, 0x01, 1, 2, 3]) },
      { key: null, value: Buffer.from("no key") },
      { key: Buffer.alloc(0), value: Buffer.alloc(0) },
      { key: Buffer.from("é-tenant"), value: Buffer.alloc(70_000, 7) },
    ];
    const packed = packRecords(records);
    assert.ok(packed instanceof ArrayBuffer);
    const back = unpackRecords(packed);
    assert.equal(back.length, records.length);
    back.forEach((record, i) => {
      const sent = records[i];
      assert.equal(record.key === null, sent.key === null);
      if (sent.key !== null) assert.ok(record.key.equals(sent.key));
      assert.ok(record.value.equals(sent.value));
    });
    assert.deepEqual(unpackRecords(packRecords([])), []);
    assert.throws(() => unpackRecords(packed.slice(0, packed.byteLength - 1)), /ends inside a record/);
  });
});
