// The shared test vectors (schemas/vectors/usage_event.json, written by the Python codec):
// this SDK's encoder writes the same bytes, byte for byte, and reads them back.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import { decodeUsageEvent, encodeUsageEvent, fingerprint64, USAGE_EVENT_FINGERPRINT } from "../dist/esm/index.js";

const doc = JSON.parse(readFileSync(new URL("../../../schemas/vectors/usage_event.json", import.meta.url), "utf8"));

test("the vectors cover several cases and the shipped fingerprint", () => {
  assert.ok(doc.cases.length >= 5);
  assert.equal(USAGE_EVENT_FINGERPRINT.toString("hex"), doc.fingerprint);
});

for (const { name, record, hex } of doc.cases) {
  test(`vector ${name}: the same bytes as the Python codec`, () => {
    assert.equal(encodeUsageEvent(record).toString("hex"), hex);
  });
  test(`vector ${name}: decodes to its record`, () => {
    assert.deepEqual({ ...decodeUsageEvent(Buffer.from(hex, "hex")) }, record);
  });
}

test("CRC-64-AVRO of the empty string is the specification's EMPTY constant", () => {
  // The Avro specification: fingerprint64("") returns EMPTY = 0xc15d213aa4d7a795.
  assert.equal(fingerprint64("").readBigUInt64LE().toString(16), "c15d213aa4d7a795");
});

test("the CommonJS build exports the same encoder", () => {
  const cjs = createRequire(import.meta.url)("../dist/cjs/index.js");
  const { record, hex } = doc.cases[1];
  assert.equal(cjs.encodeUsageEvent(record).toString("hex"), hex);
});
