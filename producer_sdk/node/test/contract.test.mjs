// Contract: the real `openai` and `@anthropic-ai/sdk` clients, wrapped, against the provider
// emulator; the events read back from the real Kafka (decoded by the Python codec) and checked
// field by field against the usage the provider reported to the caller.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { AzureOpenAI } from "openai";
import { wrap } from "../dist/esm/index.js";
import { collect, contractSuite, NO_KAFKA } from "./contract-suite.mjs";

/** Events the scenarios below produce: one per wrapped call. */
const EXPECTED = 17;
const suite = contractSuite("node-sdk");
const { runs, scenario, eventsOf, only } = suite;

const LONG = "The quick brown fox jumps over the lazy dog. ".repeat(120); // > 1024 tokens: cacheable

describe("wrapped clients against the emulator, events from Kafka", { skip: NO_KAFKA }, () => {
  before(async () => {
    const emulator = await suite.start();
    const openai = wrap(new OpenAI({ baseURL: `${emulator.url}/v1`, apiKey: "k", maxRetries: 0 }), { team: "core" });
    const plainOpenai = new OpenAI({ baseURL: `${emulator.url}/v1`, apiKey: "k", maxRetries: 0 });
    const azure = wrap(
      new AzureOpenAI({ endpoint: emulator.url, apiKey: "k", apiVersion: "2024-10-21", maxRetries: 0 }),
    );
    const plainAnthropic = new Anthropic({ baseURL: emulator.url, apiKey: "k", maxRetries: 0 });
    const anthropic = wrap(new Anthropic({ baseURL: emulator.url, apiKey: "k", maxRetries: 0 }), {
      tags: { feature: "search" },
    });
    const chat = { model: "o3-mini", messages: [{ role: "user", content: "Hello there, emulator" }] };

    await scenario("openai chat", async () => ({ response: await openai.chat.completions.create(chat) }));
    await scenario("openai chat withResponse", async () => {
      const { data, response, request_id } = await openai.chat.completions.create(chat).withResponse();
      return { data, status: response.status, requestId: request_id };
    });
    await scenario("openai cached", async () => {
      const body = { model: "gpt-4o", messages: [{ role: "user", content: LONG }] };
      await openai.chat.completions.create(body);
      return { response: await openai.chat.completions.create(body) };
    });
    await scenario("openai stream hidden usage", async () => {
      const body = { ...chat, stream: true };
      const chunks = await collect(await openai.chat.completions.create(body));
      const unwrapped = await collect(await plainOpenai.chat.completions.create(body));
      const truth = await collect(
        await plainOpenai.chat.completions.create({ ...body, stream_options: { include_usage: true } }),
      );
      return { chunks, unwrapped, truth: truth.at(-1).usage, asked: body.stream_options };
    });
    await scenario("openai stream asked usage", async () => {
      const chunks = await collect(
        await openai.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } }),
      );
      return { chunks };
    });
    await scenario("openai stream left early", async () => {
      let seen = 0;
      for await (const _chunk of await openai.chat.completions.create({ ...chat, stream: true })) {
        if (++seen === 2) break;
      }
      return { seen };
    });
    await scenario("openai stream helper", async () => {
      const runner = openai.chat.completions.stream({ ...chat });
      const final = await runner.finalChatCompletion();
      return { final };
    });
    await scenario("openai responses", async () => ({
      response: await openai.responses.create({ model: "gpt-4o", input: "Say hi" }),
    }));
    await scenario("openai responses stream", async () => {
      const chunks = await collect(await openai.responses.create({ model: "gpt-4o", input: "Say hi", stream: true }));
      return { chunks };
    });
    await scenario("openai embeddings", async () => ({
      response: await openai.embeddings.create({ model: "text-embedding-3-small", input: "a few words" }),
    }));
    await scenario("azure chat", async () => ({
      response: await azure.chat.completions.create({ ...chat, model: "chat-prod" }),
    }));
    await scenario("openai error", async () => {
      const body = { model: "gpt-4o" }; // no messages: the emulator answers 400
      const wrappedError = await openai.chat.completions.create(body).then(() => null, (e) => e);
      const plainError = await plainOpenai.chat.completions.create(body).then(() => null, (e) => e);
      return { wrappedError, plainError };
    });
    const cached = {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      thinking: { type: "enabled", budget_tokens: 1024 },
      system: [{ type: "text", text: LONG, cache_control: { type: "ephemeral", ttl: "1h" } }],
      messages: [{ role: "user", content: "Hello" }],
    };
    await scenario("anthropic write", async () => ({ response: await anthropic.messages.create(cached) }));
    await scenario("anthropic read", async () => ({ response: await anthropic.messages.create(cached) }));
    await scenario("anthropic stream", async () => {
      const body = { model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] };
      const chunks = await collect(await anthropic.messages.create({ ...body, stream: true }));
      return { chunks, truth: await plainAnthropic.messages.create(body) };
    });
    await scenario("anthropic stream helper", async () => {
      const body = { model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "Hi there" }] };
      const final = await anthropic.messages.stream(body).finalMessage();
      return { final };
    });
    await suite.finish(EXPECTED);
  });

  after(() => suite.stop());

  test("no SDK failure, every event sent", () => suite.sentAll(EXPECTED));

  test("openai chat: buckets from the reported usage, attribution, host", () => {
    const { response } = runs.get("openai chat");
    const e = only("openai chat");
    const u = response.usage;
    const reasoning = u.completion_tokens_details.reasoning_tokens;
    assert.ok(reasoning > 0);
    assert.deepEqual(e.usage, {
      input_tokens: u.prompt_tokens,
      cache_read_input_tokens: 0,
      cache_write_input_tokens: 0,
      cache_write_5m_input_tokens: null,
      cache_write_1h_input_tokens: null,
      output_tokens: u.completion_tokens - reasoning,
      reasoning_tokens: reasoning,
      provider_total_tokens: u.total_tokens,
      mismatch: null,
    });
    assert.equal(e.tenant_id, "contract");
    assert.equal(e.project, "node-tests");
    assert.equal(e.team, "core");
    assert.equal(e.provider, "openai");
    assert.equal(e.operation, "chat");
    assert.equal(e.request_model, "o3-mini");
    assert.equal(e.response_model, response.model);
    assert.equal(e.provider_request_id, response._request_id ?? response.id);
    assert.equal(e.usage_source, "reported");
    assert.equal(e.streamed, false);
    assert.equal(e.success, true);
    assert.equal(e.time_to_first_token_ms, null);
    assert.equal(e.host.language, "node");
    assert.equal(e.host.service_name, "node-contract");
    assert.match(e.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Math.abs(Date.parse(e.occurred_at) - Date.now()) < 10 * 60_000);
  });

  test("openai: withResponse still gives the data and the raw response", () => {
    const { data, status, requestId } = runs.get("openai chat withResponse");
    assert.equal(status, 200);
    const e = only("openai chat withResponse");
    assert.equal(e.usage.provider_total_tokens, data.usage.total_tokens);
    assert.equal(e.provider_request_id, requestId ?? data.id);
  });

  test("openai: cached prompt tokens leave the input bucket", () => {
    const found = eventsOf("openai cached");
    assert.equal(found.length, 2);
    const u = runs.get("openai cached").response.usage;
    const cached = u.prompt_tokens_details.cached_tokens;
    assert.ok(cached >= 1024);
    assert.equal(found[1].usage.cache_read_input_tokens, cached);
    assert.equal(found[1].usage.input_tokens, u.prompt_tokens - cached);
    const e = found[1].usage;
    const sum = e.input_tokens + e.cache_read_input_tokens + e.cache_write_input_tokens + e.output_tokens + e.reasoning_tokens;
    assert.equal(sum, u.total_tokens);
  });

  test("openai stream: the usage request is hidden from a caller who did not ask", () => {
    const { chunks, unwrapped, truth } = runs.get("openai stream hidden usage");
    assert.equal(chunks.length, unwrapped.length);
    assert.ok(chunks.every((c) => !c.usage));
    const e = only("openai stream hidden usage");
    assert.equal(e.streamed, true);
    assert.ok(e.time_to_first_token_ms !== null && e.time_to_first_token_ms <= e.latency_ms);
    const reasoning = truth.completion_tokens_details.reasoning_tokens;
    assert.equal(e.usage.input_tokens, truth.prompt_tokens);
    assert.equal(e.usage.output_tokens, truth.completion_tokens - reasoning);
    assert.equal(e.usage.reasoning_tokens, reasoning);
    assert.equal(e.usage.provider_total_tokens, truth.total_tokens);
    assert.equal(e.usage_source, "reported");
  });

  test("openai stream: a caller who asked for usage gets it", () => {
    const { chunks } = runs.get("openai stream asked usage");
    const usage = chunks.at(-1).usage;
    assert.ok(usage);
    assert.equal(only("openai stream asked usage").usage.provider_total_tokens, usage.total_tokens);
  });

  test("openai stream the caller leaves early: one event, usage never reported", () => {
    assert.equal(runs.get("openai stream left early").seen, 2);
    const e = only("openai stream left early");
    assert.equal(e.streamed, true);
    assert.equal(e.success, true);
    assert.equal(e.usage_source, "none");
    assert.equal(e.usage.input_tokens, 0);
    assert.ok(e.time_to_first_token_ms !== null);
  });

  test("openai: the .stream() helper is metered once, as a stream", () => {
    const { final } = runs.get("openai stream helper");
    const e = only("openai stream helper");
    assert.equal(e.streamed, true);
    assert.equal(e.response_model, final.model);
    assert.equal(e.usage_source, "reported");
  });

  test("openai responses, plain and streamed", () => {
    const { response } = runs.get("openai responses");
    const e = only("openai responses");
    assert.equal(e.operation, "responses");
    const reasoning = response.usage.output_tokens_details?.reasoning_tokens ?? 0;
    assert.equal(e.usage.input_tokens, response.usage.input_tokens - (response.usage.input_tokens_details?.cached_tokens ?? 0));
    assert.equal(e.usage.output_tokens, response.usage.output_tokens - reasoning);
    assert.equal(e.usage.provider_total_tokens, response.usage.total_tokens);
    const { chunks } = runs.get("openai responses stream");
    const completed = chunks.find((c) => c.type === "response.completed").response;
    const s = only("openai responses stream");
    assert.equal(s.streamed, true);
    assert.equal(s.usage.provider_total_tokens, completed.usage.total_tokens);
    assert.equal(s.provider_request_id, completed.id);
  });

  test("openai embeddings", () => {
    const { response } = runs.get("openai embeddings");
    const e = only("openai embeddings");
    assert.equal(e.operation, "embedding");
    assert.equal(e.usage.input_tokens, response.usage.prompt_tokens);
    assert.equal(e.usage.output_tokens, 0);
    assert.equal(e.usage.provider_total_tokens, response.usage.total_tokens);
  });

  test("azure openai: provider and deployment", () => {
    const { response } = runs.get("azure chat");
    const e = only("azure chat");
    assert.equal(e.provider, "azure_openai");
    assert.equal(e.deployment, "chat-prod");
    assert.equal(e.response_model, response.model);
    assert.equal(e.usage.provider_total_tokens, response.usage.total_tokens);
  });

  test("a provider error reaches the caller as the unwrapped client's, and is recorded", () => {
    const { wrappedError, plainError } = runs.get("openai error");
    assert.ok(plainError instanceof OpenAI.APIError);
    assert.equal(wrappedError.constructor, plainError.constructor);
    assert.equal(wrappedError.status, plainError.status);
    assert.equal(wrappedError.message, plainError.message);
    const e = only("openai error");
    assert.equal(e.success, false);
    assert.equal(e.http_status, plainError.status);
    assert.equal(e.error_type, plainError.constructor.name);
    assert.equal(e.usage_source, "none");
  });

  test("anthropic: cache write (1h) then read, thinking as reasoning", () => {
    const write = runs.get("anthropic write").response.usage;
    const read = runs.get("anthropic read").response.usage;
    const [w, r] = [only("anthropic write"), only("anthropic read")];
    assert.ok(write.cache_creation_input_tokens > 0);
    assert.ok(read.cache_read_input_tokens > 0);
    const thinking = write.output_tokens_details.thinking_tokens;
    assert.ok(thinking > 0);
    assert.deepEqual(w.usage, {
      input_tokens: write.input_tokens,
      cache_read_input_tokens: write.cache_read_input_tokens,
      cache_write_input_tokens: write.cache_creation_input_tokens,
      cache_write_5m_input_tokens: write.cache_creation.ephemeral_5m_input_tokens,
      cache_write_1h_input_tokens: write.cache_creation.ephemeral_1h_input_tokens,
      output_tokens: write.output_tokens - thinking,
      reasoning_tokens: thinking,
      provider_total_tokens: null,
      mismatch: null,
    });
    assert.equal(w.usage.cache_write_1h_input_tokens, write.cache_creation_input_tokens);
    assert.equal(r.usage.cache_read_input_tokens, read.cache_read_input_tokens);
    assert.equal(r.usage.cache_write_input_tokens, 0);
    assert.equal(w.provider, "anthropic");
    assert.deepEqual(w.tags, { feature: "search" });
  });

  test("anthropic stream: the same usage as the plain call", () => {
    const { chunks, truth } = runs.get("anthropic stream");
    assert.equal(chunks[0].type, "message_start");
    const e = only("anthropic stream");
    assert.equal(e.streamed, true);
    assert.equal(e.usage.input_tokens, truth.usage.input_tokens);
    assert.equal(e.usage.output_tokens, truth.usage.output_tokens);
    assert.equal(e.usage_source, "reported");
    assert.equal(e.usage.mismatch, null);
    assert.equal(e.response_model, truth.model);
  });

  test("anthropic: the .stream() helper is metered once, as a stream", () => {
    const { final } = runs.get("anthropic stream helper");
    const e = only("anthropic stream helper");
    assert.equal(e.streamed, true);
    assert.equal(e.usage.output_tokens, final.usage.output_tokens);
    assert.equal(e.usage.input_tokens, final.usage.input_tokens);
  });
});
