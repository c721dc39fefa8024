// The shared provider-usage vectors (schemas/vectors/provider_usage.json): each provider
// response, in its wire format, gives this SDK the usage the file says, field for field; the
// Python SDK's tests read the same file (tests/unit/sdk/test_provider_vectors.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Call } from "../dist/esm/call.js";
import { finishConverse, readInvoke } from "../dist/esm/providers/bedrock.js";
import { finish as finishGenerate } from "../dist/esm/providers/genai.js";

const { cases } = JSON.parse(readFileSync(new URL("../../../schemas/vectors/provider_usage.json", import.meta.url), "utf8"));

// Each case's response as the Node.js client hands it over.
const READERS = {
  bedrock_converse: (call, c) => finishConverse(call, { ...c.response, $metadata: { requestId: c.request_id } }),
  bedrock_invoke: (call, c) =>
    readInvoke(
      call,
      { body: new Uint8Array(Buffer.from(JSON.stringify(c.response))), contentType: "application/json", $metadata: { requestId: c.request_id } },
      c.headers,
    ),
  gemini_generate: (call, c) => finishGenerate(call, c.response),
};

test("the vectors cover each kind", () => {
  assert.deepEqual(new Set(cases.map((c) => c.kind)), new Set(Object.keys(READERS)));
});

for (const c of cases) {
  test(`provider vector: ${c.name}`, () => {
    const call = new Call(c.kind.startsWith("bedrock") ? "bedrock" : "gemini", "chat", {});
    READERS[c.kind](call, c);
    assert.deepEqual(call.usage, c.expected.usage);
    assert.equal(call.usageSource, c.expected.usage_source);
    assert.equal(call.responseModel, c.expected.response_model);
    assert.equal(call.providerRequestId, c.expected.provider_request_id);
  });
}
