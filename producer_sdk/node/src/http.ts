/**
 * The HTTP transport: batches to the API's `POST /v1/usage` (Node's fetch), where Kafka is out
 * of reach. Records are UsageEvents in the JSON the API documents (sink/openapi.json: the
 * field names of tokenline.UsageEvent.avsc, UUIDs as text, `occurred_at` in ISO 8601 with its
 * offset), with the SDK's own event_id, producer_id and producer_seq, so a batch sent again is
 * the same events again and the pipeline stores each event_id once. As in the Python SDK:
 *
 * - 2xx: delivered;
 * - no answer, 408, 425, 429, 5xx: thrown (the sender spools the batch); nothing is sent
 *   before `Retry-After` (or a pause doubling from 1 s to 30 s) has passed;
 * - 401, or a 403 naming no event (no ingest scope): the key is wrong; thrown (spooled), and
 *   nothing is sent for a minute; `stats().transportError` says why;
 * - 422, or a 403 naming events (`$[3].tenant_id: ...`): those events are refused (counted,
 *   never retried), the rest sent again at once; another 4xx is halved until it names its event.
 */
import type { Settings } from "./settings.js";
import type { SpoolRecord } from "./spool.js";
import type { Transport } from "./kafka.js";
import type { UsageEvent } from "./types.js";

const PAUSE_MIN_MS = 1_000;
const PAUSE_MAX_MS = 30_000;
const KEY_PAUSE_MS = 60_000;
const RETRYABLE = new Set([408, 425, 429]);
const EVENT_PATH = /^\$\[(\d+)\]/;

/** `occurred_at` (µs since the epoch) as ISO 8601 UTC with microseconds. */
function instant(us: number): string {
  const ms = Math.floor(us / 1000);
  const seconds = new Date(ms - (ms % 1000)).toISOString().slice(0, 19);
  const fraction = String(((us % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, "0");
  return `${seconds}.${fraction}Z`;
}

/** One event as the JSON body item `POST /v1/usage` takes. */
export function eventJson(event: UsageEvent): Buffer {
  return Buffer.from(JSON.stringify({ ...event, occurred_at: instant(event.occurred_at) }), "utf8");
}

interface Answer {
  status: number;
  detail: string;
  problems: string[];
  retryAfterMs: number | null;
}

export class RefusedKey extends Error {}

export class HttpTransport implements Transport {
  private readonly url: string;
  private readonly health: string;
  private readonly headers: Record<string, string>;
  private retryAt = 0;
  private pause = 0;
  error: string | null = null;
  /** Events per `POST /v1/usage` (`ingestBatchMax`). */
  readonly batchMax: number;
  /** The API's reasons for the events it refused last. */
  refusedReasons: string[] = [];

  constructor(private readonly settings: Settings) {
    const base = (settings.ingestUrl ?? "").replace(/\/+$/, "");
    this.url = `${base}/v1/usage`;
    this.batchMax = settings.ingestBatchMax;
    this.health = `${base}/healthz`;
    this.headers = {
      authorization: `Bearer ${(settings.ingestKey ?? "").trim()}`,
      "content-type": "application/json",
      "user-agent": `tokenline-sdk-node (${settings.serviceName ?? "app"})`,
    };
  }

  async probe(): Promise<void> {
    if (Date.now() < this.retryAt) throw new Error(this.error ?? "paused");
    const answer = await fetch(this.health, { signal: AbortSignal.timeout(this.settings.requestTimeoutMs) });
    await answer.arrayBuffer();
    if (answer.status !== 200) throw new Error(`${this.health} answered ${answer.status}`);
  }

  async send(records: SpoolRecord[]): Promise<number> {
    let refused = 0;
    for (let i = 0; i < records.length; i += this.settings.ingestBatchMax) {
      refused += await this.post(records.slice(i, i + this.settings.ingestBatchMax));
    }
    return refused;
  }

  private async post(records: SpoolRecord[]): Promise<number> {
    if (Date.now() < this.retryAt) throw new Error(this.error ?? "paused");
    const body = Buffer.concat([Buffer.from("["), ...records.flatMap((r, i) => (i ? [Buffer.from(","), r.value] : [r.value])), Buffer.from("]")]);
    let answer: Answer;
    try {
      answer = await this.request(body);
    } catch (err) {
      throw this.failed(`no answer from ${this.url}: ${(err as Error).message}`, null);
    }
    const { status } = answer;
    if (status >= 200 && status < 300) {
      this.pause = 0;
      this.error = null;
      return 0;
    }
    const why = `${status} ${answer.detail}`;
    const byEvent = indexes(answer.problems, records.length);
    if (status === 401 || (status === 403 && byEvent === null)) {
      this.error = why;
      this.retryAt = Date.now() + KEY_PAUSE_MS;
      throw new RefusedKey(why);
    }
    if (RETRYABLE.has(status) || status >= 500) throw this.failed(why, answer.retryAfterMs);
    if (byEvent !== null) {
      this.refusedReasons = answer.problems;
      const rest = records.filter((_, i) => !byEvent.has(i));
      return byEvent.size + (rest.length > 0 ? await this.post(rest) : 0);
    }
    if (records.length > 1) {
      const half = Math.floor(records.length / 2);
      return (await this.post(records.slice(0, half))) + (await this.post(records.slice(half)));
    }
    this.refusedReasons = [why, ...answer.problems];
    return 1;
  }

  private async request(body: Buffer): Promise<Answer> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: this.headers,
      body,
      signal: AbortSignal.timeout(this.settings.requestTimeoutMs),
    });
    const text = await response.text();
    let detail = response.statusText;
    let problems: string[] = [];
    try {
      const parsed = JSON.parse(text) as { detail?: unknown; problems?: unknown };
      if (parsed.detail !== undefined) detail = String(parsed.detail);
      problems = Array.isArray(parsed.problems) ? parsed.problems.map(String) : [detail];
    } catch {
      // not JSON: the status says it all
    }
    const after = response.headers.get("retry-after");
    const retryAfterMs = after !== null && /^\d+$/.test(after.trim()) ? Math.min(300, Number(after)) * 1000 : null;
    return { status: response.status, detail, problems, retryAfterMs };
  }

  private failed(why: string, retryAfterMs: number | null): Error {
    this.pause = Math.min(PAUSE_MAX_MS, Math.max(PAUSE_MIN_MS, this.pause * 2));
    this.error = why;
    this.retryAt = Date.now() + (retryAfterMs ?? this.pause);
    return new Error(why);
  }

  reset(): void {}

  async close(): Promise<void> {}
}

/** The indexes of the events `problems` name (`$[3]...`); null if any names none. */
function indexes(problems: string[], count: number): Set<number> | null {
  const found = new Set<number>();
  for (const problem of problems) {
    const match = EVENT_PATH.exec(problem);
    if (match === null || Number(match[1]) >= count) return null;
    found.add(Number(match[1]));
  }
  return found.size > 0 ? found : null;
}
