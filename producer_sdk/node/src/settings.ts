/** SDK settings: options given to `configure()` over `TOKENLINE_*` environment variables. */
import { homedir } from "node:os";
import { join } from "node:path";

export interface Settings {
  tenantId: string | null;
  project: string | null;
  serviceName: string | null;
  bootstrapServers: string | null;
  topic: string;
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

const NUMBERS = ["sendIntervalMs", "queueMaxMessages", "requestTimeoutMs", "spoolMaxBytes", "flushTimeoutMs", "maxTags"] as const;
const BOOLEANS = ["spoolEnabled", "detectHost", "handleSignals"] as const;
const STRINGS = ["tenantId", "project", "serviceName", "bootstrapServers", "topic", "compression", "spoolDir"] as const;

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
  if (problems.length > 0) throw new ConfigError(problems);
  return settings;
}

/** The SDK was configured wrongly: every problem found, at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`tokenline is not configured correctly:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}
