/**
 * `wrap(client, attribution)`: meter an `openai`, `@anthropic-ai/sdk`,
 * `@aws-sdk/client-bedrock-runtime` or `@google/genai` client in place.
 */
import type { Attribution } from "./context.js";
import * as anthropic from "./providers/anthropic.js";
import * as bedrock from "./providers/bedrock.js";
import * as genai from "./providers/genai.js";
import * as openai from "./providers/openai.js";
import type { Provider } from "./types.js";
import { type Chooser, type Method, patch } from "./wrapping.js";

const SUPPORTED = "openai, @anthropic-ai/sdk, @aws-sdk/client-bedrock-runtime, @google/genai";

function classNames(client: object): Set<string> {
  const names = new Set<string>();
  for (let proto = Object.getPrototypeOf(client); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name;
    if (name) names.add(name);
  }
  return names;
}

type Methods = [string[], string, Method | Chooser][];

function resolve(client: object): [Provider, Methods] {
  const names = classNames(client);
  if (names.has("AzureOpenAI")) return ["azure_openai", openai.METHODS];
  if (names.has("OpenAI")) return ["openai", openai.METHODS];
  if (names.has("AnthropicBedrock")) return ["bedrock", anthropic.METHODS];
  if (names.has("AnthropicVertex")) return ["vertex_ai", anthropic.METHODS];
  if (names.has("Anthropic") || names.has("BaseAnthropic")) return ["anthropic", anthropic.METHODS];
  if (names.has("BedrockRuntimeClient")) return ["bedrock", [[[], "send", bedrock.sendChooser(client)]]];
  if (names.has("GoogleGenAI")) return [genai.providerOf(client), genai.METHODS];
  throw new TypeError(`tokenline cannot wrap ${[...names][0] ?? typeof client}; it wraps clients of: ${SUPPORTED}`);
}

/**
 * Meter every call `client` makes (plain and streamed) and return the same client. The
 * attribution given here applies to all its calls; `withContext()` adds per-block attribution.
 * Throws TypeError for a client it does not know; never fails a call afterwards.
 */
export function wrap<T extends object>(client: T, attribution: Attribution = {}): T {
  const [provider, methods] = resolve(client);
  const given: Attribution = {};
  for (const [key, value] of Object.entries(attribution)) {
    if (value !== undefined && value !== null) (given as Record<string, unknown>)[key] = value;
  }
  for (const [path, name, method] of methods) {
    let owner: unknown = client;
    for (const step of path) owner = (owner as Record<string, unknown> | undefined)?.[step];
    patch(owner as Record<string, unknown> | undefined, name, method, provider, given);
  }
  return client;
}
