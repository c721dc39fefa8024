/** `wrap(client, attribution)`: meter an `openai` or `@anthropic-ai/sdk` client in place. */
import type { Attribution } from "./context.js";
import * as anthropic from "./providers/anthropic.js";
import * as openai from "./providers/openai.js";
import type { Provider } from "./types.js";
import { type Method, patch } from "./wrapping.js";

function classNames(client: object): Set<string> {
  const names = new Set<string>();
  for (let proto = Object.getPrototypeOf(client); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name;
    if (name) names.add(name);
  }
  return names;
}

function resolve(client: object): [Provider, [string[], string, Method][]] {
  const names = classNames(client);
  if (names.has("AzureOpenAI")) return ["azure_openai", openai.METHODS];
  if (names.has("OpenAI")) return ["openai", openai.METHODS];
  if (names.has("AnthropicBedrock")) return ["bedrock", anthropic.METHODS];
  if (names.has("AnthropicVertex")) return ["vertex_ai", anthropic.METHODS];
  if (names.has("Anthropic") || names.has("BaseAnthropic")) return ["anthropic", anthropic.METHODS];
  throw new TypeError(
    `tokenline cannot wrap ${[...names][0] ?? typeof client}; it wraps clients of: openai, @anthropic-ai/sdk`,
  );
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
