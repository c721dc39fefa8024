// Contract: the real `@aws-sdk/client-bedrock-runtime` and `@google/genai` clients, wrapped,
// against the provider emulator; the events read back from the real Kafka (decoded by the
// Python codec) and checked field by field against what the provider's response says, read
// by its documented wire format (Converse's `usage`, an InvokeModel body's own counts and the
// `x-amzn-bedrock-*-token-count` headers, Gemini's `usageMetadata`, the token counts of
// Vertex AI's embeddings).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  BedrockRuntime,
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ListAsyncInvokesCommand,
} from "@aws-sdk/client-bedrock-runtime";
import { GoogleGenAI } from "@google/genai";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { wrap } from "../dist/esm/index.js";
import { collect, contractSuite, NO_KAFKA } from "./contract-suite.mjs";

const suite = contractSuite("node-sdk-clouds");
const { runs, scenario, only } = suite;

const CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const MISTRAL_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.mistral.mistral-large-2402-v1:0";
const LLAMA = "meta.llama3-1-8b-instruct-v1:0";
const MESSAGES = [{ role: "user", content: [{ text: "Hello Bedrock" }] }];
const CACHED_SYSTEM = [
  { text: "policy ".repeat(500) },
  { cachePoint: { type: "default" } },
  { text: "manual ".repeat(300) },
  { cachePoint: { type: "default", ttl: "1h" } },
];
const ANTHROPIC_BODY = {
  anthropic_version: "bedrock-2023-05-31",
  max_tokens: 9,
  messages: [{ role: "user", content: "Hi" }],
};
const MISTRAL_BODY = { prompt: "<s>[INST] Hi [/INST]", max_tokens: 9 };
const LLAMA_BODY = { prompt: "Hi", max_gen_len: 9 };
const EXPECTED = 18;

const json = (bytes) => JSON.parse(Buffer.from(bytes).toString("utf8"));

/** The documented Converse usage as disjoint buckets. */
function converseBuckets(usage) {
  const details = usage.cacheDetails ?? [];
  const split = details.length > 0;
  const ttl = (t) => details.filter((d) => d.ttl === t).reduce((s, d) => s + d.inputTokens, 0);
  return {
    input_tokens: usage.inputTokens,
    cache_read_input_tokens: usage.cacheReadInputTokens ?? 0,
    cache_write_input_tokens: usage.cacheWriteInputTokens ?? 0,
    cache_write_5m_input_tokens: split ? ttl("5m") : null,
    cache_write_1h_input_tokens: split ? ttl("1h") : null,
    output_tokens: usage.outputTokens,
    reasoning_tokens: 0,
    provider_total_tokens: usage.totalTokens,
    mismatch: null,
  };
}

/** InvokeModel over plain HTTP (the emulator does not check signatures): its token headers. */
async function rawHeaders(modelId, body) {
  const response = await fetch(`${suite.emulator.url}/model/${encodeURIComponent(modelId)}/invoke`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  const figure = (name) => Number(response.headers.get(`x-amzn-bedrock-${name}-token-count`));
  return { input: figure("input"), output: figure("output"), cacheRead: figure("cache-read-input"), cacheWrite: figure("cache-write-input") };
}

/** The documented Gemini usageMetadata as disjoint buckets. */
function geminiBuckets(u) {
  return {
    input_tokens: u.promptTokenCount - (u.cachedContentTokenCount ?? 0) + (u.toolUsePromptTokenCount ?? 0),
    cache_read_input_tokens: u.cachedContentTokenCount ?? 0,
    cache_write_input_tokens: 0,
    cache_write_5m_input_tokens: null,
    cache_write_1h_input_tokens: null,
    output_tokens: u.candidatesTokenCount ?? 0,
    reasoning_tokens: u.thoughtsTokenCount ?? 0,
    provider_total_tokens: u.totalTokenCount,
    mismatch: null,
  };
}

describe("Bedrock and Gemini clients against the emulator, events from Kafka", { skip: NO_KAFKA }, () => {
  before(async () => {
    const emulator = await suite.start();
    const aws = {
      region: "us-east-1",
      endpoint: emulator.url,
      credentials: { accessKeyId: "x", secretAccessKey: "y" },
      maxAttempts: 1,
      // HTTP/1.1: the emulator is a plain HTTP/1.1 server (the client's default is HTTP/2)
      requestHandler: new NodeHttpHandler(),
    };
    const bedrock = wrap(new BedrockRuntimeClient(aws), { team: "search" });
    const plainBedrock = new BedrockRuntimeClient(aws);
    const aggregated = wrap(new BedrockRuntime(aws));

    await scenario("converse cache write", async () => ({
      response: await bedrock.send(new ConverseCommand({ modelId: CLAUDE, system: CACHED_SYSTEM, messages: MESSAGES })),
    }));
    await scenario("converse cache read", async () => ({
      response: await bedrock.send(new ConverseCommand({ modelId: PROFILE, system: CACHED_SYSTEM, messages: MESSAGES })),
    }));
    await scenario("converse stream", async () => {
      const response = await bedrock.send(new ConverseStreamCommand({ modelId: CLAUDE, messages: MESSAGES }));
      const stream = response.stream;
      const chunks = await collect(response.stream);
      return { response, stream, chunks };
    });
    await scenario("converse stream unwrapped", async () => {
      const response = await plainBedrock.send(new ConverseStreamCommand({ modelId: CLAUDE, messages: MESSAGES }));
      return { chunks: await collect(response.stream) };
    });
    await scenario("invoke anthropic", async () => {
      const body = JSON.stringify(ANTHROPIC_BODY);
      const response = await bedrock.send(new InvokeModelCommand({ modelId: CLAUDE, body, contentType: "application/json" }));
      return { response, text: response.body.transformToString(), headers: await rawHeaders(CLAUDE, ANTHROPIC_BODY) };
    });
    await scenario("invoke mistral arn", async () => {
      const body = JSON.stringify(MISTRAL_BODY);
      const response = await bedrock.send(new InvokeModelCommand({ modelId: MISTRAL_ARN, body }));
      return { response, headers: await rawHeaders(MISTRAL_ARN, MISTRAL_BODY) };
    });
    await scenario("invoke stream anthropic", async () => {
      const response = await bedrock.send(
        new InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body: JSON.stringify(ANTHROPIC_BODY) }),
      );
      return { chunks: (await collect(response.body)).map((e) => json(e.chunk.bytes)) };
    });
    await scenario("invoke stream llama", async () => {
      const response = await bedrock.send(
        new InvokeModelWithResponseStreamCommand({ modelId: LLAMA, body: JSON.stringify(LLAMA_BODY) }),
      );
      return { chunks: (await collect(response.body)).map((e) => json(e.chunk.bytes)) };
    });
    await scenario("invoke stream left early", async () => {
      const response = await bedrock.send(
        new InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body: JSON.stringify(ANTHROPIC_BODY) }),
      );
      for await (const _event of response.body) break;
      return {};
    });
    await scenario("bedrock error", async () => {
      // a model family the emulator does not serve: it answers 400 (ValidationException)
      const command = new InvokeModelCommand({ modelId: "cohere.command-r-v1:0", body: "{}" });
      const wrappedError = await bedrock.send(command).then(() => null, (e) => e);
      const plainError = await plainBedrock.send(command).then(() => null, (e) => e);
      return { wrappedError, plainError };
    });
    await scenario("bedrock aggregated client", async () => ({
      response: await aggregated.converse({ modelId: CLAUDE, messages: MESSAGES }),
    }));
    await scenario("bedrock other command", async () => ({
      error: await bedrock.send(new ListAsyncInvokesCommand({})).then(() => null, (e) => e),
    }));

    const gemini = wrap(new GoogleGenAI({ apiKey: "k", httpOptions: { baseUrl: emulator.url } }), { team: "g" });
    const vertex = wrap(new GoogleGenAI({ vertexai: true, apiKey: "k", httpOptions: { baseUrl: emulator.url } }));
    const thinking = { thinkingConfig: { thinkingBudget: 32 } };
    await scenario("gemini generate", async () => ({
      response: await gemini.models.generateContent({ model: "gemini-2.5-flash", contents: "Hello Gemini", config: thinking }),
    }));
    await scenario("gemini stream", async () => {
      const stream = await gemini.models.generateContentStream({ model: "gemini-2.5-flash", contents: "Hello Gemini" });
      return { stream, chunks: await collect(stream) };
    });
    await scenario("gemini chat", async () => {
      const chat = gemini.chats.create({ model: "gemini-2.5-flash" });
      return { response: await chat.sendMessage({ message: "Hi there" }) };
    });
    await scenario("vertex generate", async () => ({
      response: await vertex.models.generateContent({ model: "gemini-2.5-pro", contents: "Hello Vertex" }),
    }));
    await scenario("vertex stream", async () => {
      const stream = await vertex.models.generateContentStream({ model: "gemini-2.5-pro", contents: "Hello Vertex" });
      return { chunks: await collect(stream) };
    });
    const plainGemini = new GoogleGenAI({ apiKey: "k", httpOptions: { baseUrl: emulator.url } });
    const texts = ["Embed this sentence.", "And this rather longer second sentence, please."];
    await scenario("gemini embed", async () => {
      const body = { model: "gemini-embedding-001", contents: texts, config: { outputDimensionality: 8 } };
      return { response: await gemini.models.embedContent(body), plain: await plainGemini.models.embedContent(body) };
    });
    await scenario("vertex embed predict", async () => ({
      response: await vertex.models.embedContent({ model: "text-embedding-005", contents: texts }),
    }));
    await scenario("vertex embed content", async () => ({
      response: await vertex.models.embedContent({ model: "gemini-embedding-2", contents: texts[1] }),
    }));
    await suite.finish(EXPECTED);
  });

  after(() => suite.stop());

  test("no SDK failure, every event sent", () => suite.sentAll(EXPECTED));

  test("bedrock converse: buckets and the 5m/1h write split from the documented usage", () => {
    const { response } = runs.get("converse cache write");
    const e = only("converse cache write");
    assert.ok(response.usage.cacheWriteInputTokens > 0);
    assert.equal(response.usage.cacheDetails.length, 2);
    assert.deepEqual(e.usage, converseBuckets(response.usage));
    assert.equal(e.provider, "bedrock");
    assert.equal(e.operation, "chat");
    assert.equal(e.request_model, CLAUDE);
    assert.equal(e.deployment, null);
    assert.equal(e.region, "us-east-1");
    assert.equal(e.team, "search");
    assert.equal(e.provider_request_id, response.$metadata.requestId);
    assert.equal(e.usage_source, "reported");
    assert.equal(e.streamed, false);
  });

  test("bedrock converse through an inference profile: cache reads, the profile as deployment", () => {
    const { response } = runs.get("converse cache read");
    const e = only("converse cache read");
    assert.ok(response.usage.cacheReadInputTokens > 0);
    assert.deepEqual(e.usage, converseBuckets(response.usage));
    assert.equal(e.deployment, PROFILE);
  });

  test("bedrock converse stream: the metadata event's usage; the caller's stream object kept", () => {
    const { response, stream, chunks } = runs.get("converse stream");
    assert.equal(response.stream, stream);
    assert.deepEqual(
      chunks.map((c) => Object.keys(c)[0]),
      runs.get("converse stream unwrapped").chunks.map((c) => Object.keys(c)[0]),
    );
    const metadata = chunks.find((c) => c.metadata).metadata;
    const e = only("converse stream");
    assert.deepEqual(e.usage, converseBuckets(metadata.usage));
    assert.equal(e.streamed, true);
    assert.ok(e.time_to_first_token_ms !== null && e.time_to_first_token_ms <= e.latency_ms);
  });

  test("bedrock invoke (Anthropic body): the body's counts, agreeing with the headers", () => {
    const { text, headers } = runs.get("invoke anthropic");
    const body = JSON.parse(text);
    const u = body.usage;
    const e = only("invoke anthropic");
    assert.deepEqual(e.usage, {
      input_tokens: u.input_tokens,
      cache_read_input_tokens: u.cache_read_input_tokens,
      cache_write_input_tokens: u.cache_creation_input_tokens,
      cache_write_5m_input_tokens: u.cache_creation.ephemeral_5m_input_tokens,
      cache_write_1h_input_tokens: u.cache_creation.ephemeral_1h_input_tokens,
      output_tokens: u.output_tokens,
      reasoning_tokens: 0,
      provider_total_tokens: null,
      mismatch: null,
    });
    assert.equal(headers.input, u.input_tokens);
    assert.equal(headers.output, u.output_tokens);
    assert.equal(e.response_model, body.model);
  });

  test("bedrock invoke (Mistral body, no counts) through an ARN: the headers are the usage", () => {
    const { headers } = runs.get("invoke mistral arn");
    const e = only("invoke mistral arn");
    assert.ok(headers.input > 0 && headers.output > 0);
    assert.deepEqual(e.usage, {
      input_tokens: headers.input,
      cache_read_input_tokens: headers.cacheRead,
      cache_write_input_tokens: headers.cacheWrite,
      cache_write_5m_input_tokens: null,
      cache_write_1h_input_tokens: null,
      output_tokens: headers.output,
      reasoning_tokens: 0,
      provider_total_tokens: null,
      mismatch: null,
    });
    assert.equal(e.deployment, MISTRAL_ARN);
    assert.equal(e.request_model, MISTRAL_ARN);
  });

  test("bedrock invoke stream (Anthropic): message_delta's counts, checked against the metrics", () => {
    const { chunks } = runs.get("invoke stream anthropic");
    const start = chunks.find((c) => c.type === "message_start").message;
    const delta = chunks.findLast((c) => c.type === "message_delta").usage;
    const metrics = chunks.at(-1)["amazon-bedrock-invocationMetrics"];
    const e = only("invoke stream anthropic");
    assert.equal(e.usage.input_tokens, start.usage.input_tokens);
    assert.equal(e.usage.output_tokens, delta.output_tokens);
    assert.equal(e.usage.input_tokens, metrics.inputTokenCount);
    assert.equal(e.usage.output_tokens, metrics.outputTokenCount);
    assert.equal(e.usage.mismatch, null);
    assert.equal(e.response_model, start.model);
    assert.equal(e.streamed, true);
    assert.equal(e.usage_source, "reported");
  });

  test("bedrock invoke stream (Llama): the invocation metrics are the usage", () => {
    const { chunks } = runs.get("invoke stream llama");
    const metrics = chunks.at(-1)["amazon-bedrock-invocationMetrics"];
    const e = only("invoke stream llama");
    assert.equal(e.usage.input_tokens, metrics.inputTokenCount);
    assert.equal(e.usage.output_tokens, metrics.outputTokenCount);
    assert.equal(e.usage_source, "reported");
  });

  test("bedrock invoke stream the caller leaves after message_start: unfinished, not reported", () => {
    const e = only("invoke stream left early");
    assert.equal(e.usage_source, "none");
    assert.equal(e.usage.mismatch, "output_tokens not reported: the stream ended before message_delta");
  });

  test("bedrock: a provider error reaches the caller as the unwrapped client's, and is recorded", () => {
    const { wrappedError, plainError } = runs.get("bedrock error");
    assert.ok(plainError instanceof Error);
    assert.equal(wrappedError.constructor, plainError.constructor);
    assert.equal(wrappedError.name, "ValidationException");
    assert.equal(wrappedError.message, plainError.message);
    assert.equal(wrappedError.$metadata.httpStatusCode, 400);
    const e = only("bedrock error");
    assert.equal(e.success, false);
    assert.equal(e.http_status, 400);
    assert.equal(e.error_type, plainError.constructor.name);
    assert.equal(e.usage_source, "none");
  });

  test("bedrock: the aggregated client's methods are metered through send", () => {
    const { response } = runs.get("bedrock aggregated client");
    assert.deepEqual(only("bedrock aggregated client").usage, converseBuckets(response.usage));
  });

  test("bedrock: other commands pass through unmetered", () => {
    const { session } = runs.get("bedrock other command");
    assert.equal(suite.events.filter((e) => e.session_id === session).length, 0);
  });

  test("gemini generateContent: thinking as reasoning, buckets add up to the total", () => {
    const { response } = runs.get("gemini generate");
    const u = response.usageMetadata;
    assert.ok(u.thoughtsTokenCount > 0);
    const e = only("gemini generate");
    assert.deepEqual(e.usage, geminiBuckets(u));
    assert.equal(e.provider, "gemini");
    assert.equal(e.request_model, "gemini-2.5-flash");
    assert.equal(e.response_model, response.modelVersion);
    assert.equal(e.provider_request_id, response.responseId ?? null);
    assert.equal(e.team, "g");
  });

  test("gemini stream: the last chunk's cumulative usage", () => {
    const { chunks } = runs.get("gemini stream");
    const e = only("gemini stream");
    assert.deepEqual(e.usage, geminiBuckets(chunks.at(-1).usageMetadata));
    assert.equal(e.streamed, true);
    assert.ok(e.time_to_first_token_ms !== null);
  });

  test("gemini chats.create().sendMessage is metered", () => {
    const { response } = runs.get("gemini chat");
    assert.deepEqual(only("gemini chat").usage, geminiBuckets(response.usageMetadata));
  });

  test("vertex ai generateContent: reported as vertex_ai", () => {
    const { response } = runs.get("vertex generate");
    const e = only("vertex generate");
    assert.equal(e.provider, "vertex_ai");
    assert.deepEqual(e.usage, geminiBuckets(response.usageMetadata));
  });

  test("vertex ai stream: reported as vertex_ai, counts from the last chunk only", () => {
    const { chunks } = runs.get("vertex stream");
    const e = only("vertex stream");
    assert.equal(e.provider, "vertex_ai");
    assert.deepEqual(e.usage, geminiBuckets(chunks.at(-1).usageMetadata));
    assert.equal(e.usage_source, "reported");
  });

  /** Input tokens only: what an embedding call is billed for. */
  const embedding = (input) => ({
    input_tokens: input,
    cache_read_input_tokens: 0,
    cache_write_input_tokens: 0,
    cache_write_5m_input_tokens: null,
    cache_write_1h_input_tokens: null,
    output_tokens: 0,
    reasoning_tokens: 0,
    provider_total_tokens: null,
    mismatch: null,
  });

  test("gemini embedContent: an embedding event; the Gemini API reports no count, so none", () => {
    const { response, plain } = runs.get("gemini embed");
    assert.equal(response.embeddings.length, 2);
    assert.deepEqual(response.embeddings, plain.embeddings);
    // BatchEmbedContentsResponse has no token count: neither usageMetadata nor statistics
    assert.equal(response.usageMetadata, undefined);
    assert.ok(response.embeddings.every((e) => e.statistics === undefined && e.values.length === 8));
    const e = only("gemini embed");
    assert.equal(e.provider, "gemini");
    assert.equal(e.operation, "embedding");
    assert.equal(e.request_model, "gemini-embedding-001");
    assert.equal(e.response_model, null);
    assert.equal(e.team, "g");
    assert.equal(e.success, true);
    assert.equal(e.streamed, false);
    assert.equal(e.usage_source, "none");
    assert.deepEqual(e.usage, embedding(0));
  });

  test("vertex ai embedContent through :predict: the texts' token counts add up", () => {
    const { response } = runs.get("vertex embed predict");
    const counts = response.embeddings.map((x) => x.statistics.tokenCount);
    assert.equal(counts.length, 2);
    assert.ok(counts.every((c) => c > 0));
    const e = only("vertex embed predict");
    assert.equal(e.provider, "vertex_ai");
    assert.equal(e.operation, "embedding");
    assert.equal(e.request_model, "text-embedding-005");
    assert.equal(e.usage_source, "reported");
    assert.deepEqual(e.usage, embedding(counts[0] + counts[1]));
  });

  test("vertex ai embedContent through :embedContent: the prompt's count", () => {
    const { response } = runs.get("vertex embed content");
    assert.equal(response.embeddings.length, 1);
    const tokens = response.embeddings[0].statistics.tokenCount;
    assert.ok(tokens > 0);
    const e = only("vertex embed content");
    assert.equal(e.provider, "vertex_ai");
    assert.equal(e.operation, "embedding");
    assert.equal(e.request_model, "gemini-embedding-2");
    assert.equal(e.usage_source, "reported");
    assert.deepEqual(e.usage, embedding(tokens));
  });
});
