/** SDK settings: options given to `configure()` over `TOKENLINE_*` environment variables. */
import { homedir } from "node:os";
import { join } from "node:path";

export interface Settings {
  tenantId: string | null;
  project: string | null;
  serviceName: string | null;
  bootstrapServers: string | null;
  topic: string;
  /** "kafka", or "http": send to the API's `POST /v1/usage` (`ingestUrl`, `ingestKey`). */
  transport: "kafka" | "http";
  /** The HTTP API's base URL, e.g. `https://tokenline.example.com` (transport "http"). */
  ingestUrl: string | null;
  /** An API key with the ingest scope for the tenant (`tokenline api keys create`). */
  ingestKey: string | null;
  /** Events per `POST /v1/usage` at most. */
  ingestBatchMax: number;
  /** "none" or "gzip" (the codecs kafkajs has built in). */
  compression: "none" | "gzip";
  /** How often queued calls are built, encoded and handed to Kafka, off the caller's path. */
  sendIntervalMs: number;
  queueMaxMessages: number;
  /** Per Kafka request: how long to wait for the broker before the batch goes to the spool. */
  requestTimeoutMs: number;
  spoolDir: string;
  spoolMaxBytes: number;
  spoolEnabled: boolean;
  detectHost: boolean;
  /** At exit or `close()`: how long to wait for Kafka before what is left goes to the spool. */
  flushTimeoutMs: number;
  /** Run the exit path on SIGTERM/SIGINT when the application has no handler of its own. */
  handleSignals: boolean;
  maxTags: number;
}

export type Options = Partial<Settings>;

const NUMBERS = ["sendIntervalMs", "queueMaxMessages", "requestTimeoutMs", "spoolMaxBytes", "flushTimeoutMs", "maxTags", "ingestBatchMax"] as const;
const BOOLEANS = ["spoolEnabled", "detectHost", "handleSignals"] as const;
const STRINGS = ["tenantId", "project", "serviceName", "bootstrapServers", "topic", "compression", "spoolDir", "transport", "ingestUrl", "ingestKey"] as const;

/** `sendIntervalMs` → `TOKENLINE_SEND_INTERVAL_MS`. */
export function envName(key: string): string {
  return `TOKENLINE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export function defaults(): Settings {
  return {
    tenantId: null,
    project: null,
    serviceName: null,
    bootstrapServers: null,
    topic: "llm-usage.raw",
    transport: "kafka",
    ingestUrl: null,
    ingestKey: null,
    ingestBatchMax: 500,
    compression: "none",
    sendIntervalMs: 50,
    queueMaxMessages: 100_000,
    requestTimeoutMs: 10_000,
    spoolDir: join(homedir(), ".cache", "tokenline", "spool-node"),
    spoolMaxBytes: 256 * 1024 * 1024,
    spoolEnabled: true,
    detectHost: true,
    flushTimeoutMs: 5_000,
    handleSignals: true,
    maxTags: 32,
  };
}

/** Settings from `options` over `env` over the defaults; every problem in one error. */
export function loadSettings(options: Options = {}, env: NodeJS.ProcessEnv = process.env): Settings {
  const s = defaults() as unknown as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of [...STRINGS, ...NUMBERS, ...BOOLEANS]) {
    const raw = env[envName(key)];
    if (raw === undefined || raw === "") continue;
    if ((NUMBERS as readonly string[]).includes(key)) {
      const n = Number(raw);
      if (Number.isFinite(n)) s[key] = n;
      else problems.push(`${key}: ${JSON.stringify(raw)} is not a number (${envName(key)})`);
    } else if ((BOOLEANS as readonly string[]).includes(key)) {
      s[key] = ["1", "true", "yes", "on"].includes(raw.toLowerCase());
    } else {
      s[key] = raw;
    }
  }
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) s[key] = value;
  }
  const settings = s as unknown as Settings;
  if (!["none", "gzip"].includes(settings.compression)) problems.push(`compression: must be none or gzip`);
  if (settings.maxTags < 0 || settings.maxTags > 64) problems.push("maxTags: must be 0 to 64");
  if (settings.sendIntervalMs < 1) problems.push("sendIntervalMs: must be at least 1");
  problems.push(...transportProblems(settings));
  if (problems.length > 0) throw new ConfigError(problems);
  return settings;
}

function transportProblems(s: Settings): string[] {
  if (s.transport === "kafka") return [];
  if (s.transport !== "http") return [`transport: must be kafka or http, not ${JSON.stringify(s.transport)} (TOKENLINE_TRANSPORT)`];
  const problems: string[] = [];
  if (!s.ingestUrl) problems.push("ingestUrl: required when transport is http (TOKENLINE_INGEST_URL)");
  else if (!/^https?:\/\/[^/]+/.test(s.ingestUrl)) {
    problems.push(`ingestUrl: must be an http:// or https:// URL, not ${JSON.stringify(s.ingestUrl)} (TOKENLINE_INGEST_URL)`);
  }
  if (!s.ingestKey?.trim()) {
    problems.push("ingestKey: required when transport is http, an API key with the ingest scope (TOKENLINE_INGEST_KEY)");
  }
  if (!(s.ingestBatchMax >= 1 && s.ingestBatchMax <= 5_000)) problems.push("ingestBatchMax: must be 1 to 5000 (TOKENLINE_INGEST_BATCH_MAX)");
  return problems;
}

/** The SDK was configured wrongly: every problem found, at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`tokenline is not configured correctly:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}
