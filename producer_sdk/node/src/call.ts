/** One metered call, as the wrappers fill it in, and how it becomes a UsageEvent. */
import { randomBytes } from "node:crypto";
import type { Attribution } from "./context.js";
import { emptyUsage } from "./usage.js";
import type { Host, Operation, Provider, Usage, UsageEvent, UsageSource } from "./types.js";

const ERROR_MESSAGE_MAX = 500;
const TAG_KEY_MAX = 128;
const TAG_VALUE_MAX = 512;

const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let poolAt = 0;

/** 16 bytes of a pooled `randomBytes` draw (one draw serves 256 ids). */
function random16(): Buffer {
  if (poolAt >= pool.length) {
    pool = randomBytes(16 * POOL_IDS);
    poolAt = 0;
  }
  poolAt += 16;
  return pool.subarray(poolAt - 16, poolAt);
}

/** A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version, 74 random bits. */
export function uuid7(nowMs: number = Date.now()): string {
  const bytes = random16();
  bytes.writeUIntBE(nowMs, 0, 6);
  bytes[6] = 0x70 | ((bytes[6] as number) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] as number) & 0x3f);
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const now = (): bigint => process.hrtime.bigint();

/** What a wrapper learned about one call. Times are `process.hrtime.bigint()` readings. */
export class Call {
  requestModel: string | null = null;
  responseModel: string | null = null;
  deployment: string | null = null;
  region: string | null = null;
  batch = false;
  streamed = false;
  usage: Usage | null = null;
  usageSource: UsageSource = "none";
  /** Microseconds since the epoch when the call started. */
  occurredAtUs: number = Date.now() * 1000;
  readonly startedNs: bigint = now();
  endedNs: bigint | null = null;
  firstTokenNs: bigint | null = null;
  success = true;
  errorType: string | null = null;
  errorMessage: string | null = null;
  httpStatus: number | null = null;
  providerRequestId: string | null = null;

  /** What fills the call in from its result on the sender's timer (`readWith`), if anything. */
  private reader: ((this: unknown, call: Call, value: unknown) => void) | null = null;
  private readerOf: unknown = null;
  private readValue: unknown = undefined;

  constructor(
    public provider: Provider,
    public operation: Operation,
    public attribution: Attribution,
  ) {}

  /**
   * Have `reader.call(owner, call, value)` fill the call in when its event is built, on the
   * sender's timer, off the caller's path (a method's `finish`, a stream's `onEnd`).
   */
  readWith<T>(reader: (this: T, call: Call, value: unknown) => void, owner: T, value: unknown): void {
    this.reader = reader as (this: unknown, call: Call, value: unknown) => void;
    this.readerOf = owner;
    this.readValue = value;
  }

  /** Run the reader given to `readWith` (once) and let go of the result it read. */
  read(): void {
    const reader = this.reader;
    if (reader === null) return;
    const value = this.readValue;
    this.reader = null;
    this.readValue = undefined;
    reader.call(this.readerOf, this, value);
  }

  end(): void {
    if (this.endedNs === null) this.endedNs = now();
  }

  firstToken(): void {
    if (this.firstTokenNs === null) this.firstTokenNs = now();
  }

  /** Record a provider error (the error itself reaches the caller unchanged). */
  failed(error: unknown): void {
    this.success = false;
    const err = error as { name?: unknown; message?: unknown; status?: unknown; constructor?: { name?: string } };
    this.errorType = (error instanceof Error ? error.constructor.name : null) ?? typeof error;
    const message = error instanceof Error ? error.message : String(error);
    this.errorMessage = message ? message.slice(0, ERROR_MESSAGE_MAX) : null;
    // `status` (openai, @anthropic-ai/sdk, @google/genai), or an AWS SDK error's `$metadata`
    const meta = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
    const status = err?.status ?? meta?.httpStatusCode;
    this.httpStatus = Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 599 ? (status as number) : null;
  }
}

/** producer_id (one per process) and producer_seq (from 0, no gaps). */
export class ProducerIdentity {
  readonly producerId = uuid7();
  private seq = 0;

  nextSeq(): number {
    return this.seq++;
  }
}

const ms = (from: bigint, to: bigint): number => Math.max(0, Number((to - from) / 1_000_000n));

/** The tags, bounded: past `maxTags` the first by name, each key and value cut to its limit. */
function eventTags(given: Record<string, string> | undefined, maxTags: number): Record<string, string> {
  const tags: Record<string, string> = {};
  if (given === undefined || given === null) return tags;
  let keys = Object.keys(given);
  if (keys.length > maxTags) keys = keys.sort().slice(0, maxTags);
  for (const key of keys) {
    const name = key.slice(0, TAG_KEY_MAX);
    const value = String(given[key]).slice(0, TAG_VALUE_MAX);
    // an own "__proto__" key as Object.fromEntries makes it (an assignment would set the prototype)
    if (name === "__proto__") Object.defineProperty(tags, name, { value, enumerable: true, writable: true, configurable: true });
    else tags[name] = value;
  }
  return tags;
}

export function buildEvent(call: Call, identity: ProducerIdentity, host: Host, maxTags: number): UsageEvent {
  const a = call.attribution;
  if (!a.tenantId) throw new Error("tenant_id: required (wrap(client, { tenantId }) or TOKENLINE_TENANT_ID)");
  const ended = call.endedNs ?? now();
  return {
    event_id: uuid7(),
    producer_id: identity.producerId,
    producer_seq: identity.nextSeq(),
    occurred_at: call.occurredAtUs,
    tenant_id: a.tenantId,
    project: a.project ?? null,
    user_id: a.userId ?? null,
    session_id: a.sessionId ?? null,
    team: a.team ?? null,
    tags: eventTags(a.tags, maxTags),
    provider: call.provider,
    operation: call.operation,
    request_model: call.requestModel,
    response_model: call.responseModel,
    deployment: call.deployment,
    region: call.region,
    batch: call.batch,
    usage: call.usage ?? emptyUsage(),
    usage_source: call.usage !== null ? call.usageSource : "none",
    streamed: call.streamed,
    latency_ms: ms(call.startedNs, ended),
    time_to_first_token_ms: call.firstTokenNs !== null ? ms(call.startedNs, call.firstTokenNs) : null,
    success: call.success,
    error_type: call.errorType,
    error_message: call.errorMessage,
    http_status: call.httpStatus,
    provider_request_id: call.providerRequestId,
    host,
  };
}
