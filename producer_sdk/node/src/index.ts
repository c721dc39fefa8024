/**
 * Tokenline's producer SDK for Node.js: wrap `openai`, `@anthropic-ai/sdk`,
 * `@aws-sdk/client-bedrock-runtime` and `@google/genai` clients, and
 * every call they make becomes a UsageEvent (Avro single-object encoding) on Kafka, sent in
 * the background, spooled to disk while Kafka is away, flushed at exit.
 */
export { decodeUsageEvent, encodeUsageEvent, fingerprint64, USAGE_EVENT_FINGERPRINT } from "./avro.js";
export { type Attribution, currentAttribution, withContext } from "./context.js";
export { close, configure, flush, stats } from "./runtime.js";
export { ConfigError, type Options, type Settings } from "./settings.js";
export { type Counts, record, type RecordOptions, track, type TrackOptions } from "./track.js";
export type { Host, Operation, Provider, Usage, UsageEvent, UsageSource } from "./types.js";
export { SDK_VERSION } from "./version.js";
export { wrap } from "./wrap.js";
