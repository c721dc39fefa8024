/**
 * The process-wide runtime: settings, the sender, producer identity and host metadata; and the
 * exit path, which runs once however the process ends:
 *
 * - the event loop empties (`beforeExit`): the runtime is closed: what Kafka acknowledges
 *   within `flushTimeoutMs` is sent, the rest goes to the spool;
 * - SIGTERM or SIGINT with no handler of the application's: the same close, then the signal is
 *   raised again with its default action, so the process ends as it would have;
 * - `process.exit()` or an uncaught exception (`exit`, where nothing asynchronous runs): what
 *   is not yet acknowledged is written to the spool synchronously, for the next process to
 *   re-send;
 * - SIGKILL or a crash: nothing runs; the spool keeps what was already in it.
 */
import { encodeUsageEvent } from "./avro.js";
import { buildEvent, type Call, ProducerIdentity } from "./call.js";
import type { Attribution } from "./context.js";
import { localHost } from "./host.js";
import { eventJson } from "./http.js";
import { Sender, type Counters } from "./sender.js";
import type { SpoolRecord } from "./spool.js";
import { ConfigError, loadSettings, type Options, type Settings } from "./settings.js";
import type { Host } from "./types.js";

export class Runtime {
  readonly identity = new ProducerIdentity();
  readonly host: Host;
  readonly sender: Sender;
  readonly base: Attribution;
  /** The last event's tenant and its Kafka key (records share it, as they never change it). */
  private lastTenant = "";
  private lastKey = Buffer.alloc(0);
  /** The SDK's own failures, swallowed (never reaching a caller). */
  errors = 0;
  lastError: unknown = null;

  constructor(readonly settings: Settings) {
    if (settings.transport === "kafka" && !settings.bootstrapServers) {
      throw new ConfigError(["bootstrapServers: required to send to Kafka (TOKENLINE_BOOTSTRAP_SERVERS)"]);
    }
    this.host = localHost(process.env, settings.serviceName, settings.detectHost);
    this.sender = new Sender(settings, (call) => this.build(call));
    const base: Attribution = {};
    if (settings.tenantId) base.tenantId = settings.tenantId;
    if (settings.project) base.project = settings.project;
    this.base = base;
  }

  /**
   * Queue the call's event. It is built on the sender's timer, off the caller's path, after the
   * call's reader (`Call.readWith`) filled it in from the response.
   */
  finish(call: Call): void {
    this.sender.enqueue(call);
  }

  /** The queued call's record; null (counted) when reading or building it failed. */
  private build(call: Call): SpoolRecord | null {
    try {
      call.read();
      const event = buildEvent(call, this.identity, this.host, this.settings.maxTags);
      const value = this.settings.transport === "http" ? eventJson(event) : encodeUsageEvent(event);
      if (event.tenant_id !== this.lastTenant) {
        this.lastKey = Buffer.from(event.tenant_id, "utf8");
        this.lastTenant = event.tenant_id;
      }
      return { key: this.lastKey, value };
    } catch (err) {
      this.swallowed(err);
      return null;
    }
  }

  swallowed(err: unknown): void {
    this.errors++;
    this.lastError = err;
  }

  stats(): Counters & { pending: number; errors: number; transportError: string | null } {
    const transportError = this.sender.transport.error;
    return { ...this.sender.counters, pending: this.sender.pending(), errors: this.errors, transportError };
  }
}

let runtime: Runtime | null = null;

/** Configure the SDK (options over `TOKENLINE_*`); a runtime in place is closed first. */
export async function configure(options: Options = {}): Promise<Runtime> {
  const next = new Runtime(loadSettings(options));
  const previous = runtime;
  runtime = next;
  installHooks();
  if (previous !== null) await previous.sender.close(previous.settings.flushTimeoutMs);
  return next;
}

let warned = false;

/**
 * The runtime in force, configured from `TOKENLINE_*` on first use; null (the call goes on
 * unmetered, with one process warning) while the SDK cannot be configured.
 */
export function currentRuntime(): Runtime | null {
  if (runtime === null) {
    try {
      runtime = new Runtime(loadSettings());
      installHooks();
    } catch (err) {
      if (!warned) {
        warned = true;
        process.emitWarning(`tokenline: calls go unmetered: ${(err as Error).message}`, "TokenlineWarning");
      }
      return null;
    }
  }
  return runtime;
}

/** Wait up to `timeoutMs` for pending events; how many remain. */
export async function flush(timeoutMs = 10_000): Promise<number> {
  return runtime === null ? 0 : runtime.sender.flush(timeoutMs);
}

/** Send what Kafka acknowledges within `timeoutMs`, spool the rest, stop the sender. */
export async function close(timeoutMs?: number): Promise<void> {
  const current = runtime;
  if (current === null) return;
  await current.sender.close(timeoutMs ?? current.settings.flushTimeoutMs);
}

/** What happened to the current runtime's events. */
export function stats(): ReturnType<Runtime["stats"]> | null {
  return runtime?.stats() ?? null;
}

let hooked = false;
let closing: Promise<void> | null = null;

function closeAtExit(): Promise<void> {
  const current = runtime;
  if (current === null || current.sender.closed) return Promise.resolve();
  closing ??= current.sender.close(current.settings.flushTimeoutMs).finally(() => {
    closing = null;
  });
  return closing;
}

function onSignal(signal: NodeJS.Signals): void {
  const others = process.listenerCount(signal) > 1;
  if (others) return; // the application handles it, and should call close() itself
  void closeAtExit().finally(() => {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal); // the default action now: the process ends as it would have
  });
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on("beforeExit", () => {
    void closeAtExit();
  });
  process.on("exit", () => {
    const current = runtime;
    if (current !== null && !current.sender.closed) current.sender.spoolNow();
  });
  if (runtime?.settings.handleSignals !== false) {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      if (process.listenerCount(signal) === 0) process.on(signal, onSignal);
    }
  }
}
