/**
 * The background sender: calls queued by the wrappers are built into events and encoded on a
 * timer, off the caller's path, a batch at a time (at most the transport's `batchMax`: 500
 * records per Kafka produce request, `ingestBatchMax` per HTTP request), and each batch goes to
 * the far end through a transport: Kafka (`kafka.ts`: kafkajs, idempotent, runs in the
 * sender's worker thread, so its encoding and protocol work stays off the application's event
 * loop) or the HTTP API (`http.ts`, `transport: "http"`). A batch the far end refuses or does
 * not answer goes to the disk spool; the spool is re-sent when it answers again. Until the far
 * end acknowledges a batch, this thread keeps it (`inFlight`), so the exit path can spool it.
 * Events the HTTP API refuses as invalid are counted (`refused`) and dropped, never retried.
 *
 * Nothing here keeps the process alive (the Kafka worker is unref'd) but a send in flight,
 * which holds the process open with its own timer, which also bounds it: past
 * `requestTimeoutMs` the batch goes to the spool and the transport is reset (the Kafka worker
 * replaced; a late acknowledgement then means a duplicate, which the pipeline's upsert by
 * event_id absorbs).
 */
import { join } from "node:path";
import type { Call } from "./call.js";
import { HttpTransport } from "./http.js";
import { KafkaTransport, type Transport } from "./kafka.js";
import type { Settings } from "./settings.js";
import { DiskSpool, type SpoolRecord } from "./spool.js";

export interface Counters {
  queued: number;
  sent: number;
  spooled: number;
  resent: number;
  dropped: number;
  buildFailed: number;
  /** Events the HTTP API refused as invalid (dropped, with the reasons in `refusedReasons`). */
  refused: number;
}

/** A queued call, built into its encoded record on the sender's timer. */
type Pending = Call;

export class Sender {
  readonly counters: Counters = { queued: 0, sent: 0, spooled: 0, resent: 0, dropped: 0, buildFailed: 0, refused: 0 };
  private queue: Pending[] = [];
  private inFlight: SpoolRecord[] = [];
  readonly transport: Transport;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private kafkaUp = false;
  readonly spool: DiskSpool | null;
  closed = false;

  /** `build` makes a queued call's record, or null when building failed (counted). */
  constructor(
    readonly settings: Settings,
    private readonly buildRecord: (pending: Pending) => SpoolRecord | null,
  ) {
    const http = settings.transport === "http";
    this.transport = http ? new HttpTransport(settings) : new KafkaTransport(settings);
    // JSON records for HTTP, Avro for Kafka: a spool directory serves one transport.
    const spoolDir = http ? join(settings.spoolDir, "http") : settings.spoolDir;
    this.spool = settings.spoolEnabled ? new DiskSpool(spoolDir, settings.spoolMaxBytes) : null;
    if (this.spool?.backlog()) this.schedule(0); // an earlier process's records: re-send now
  }

  /** Queue a call (never blocks; past the bound the call is dropped and counted). */
  enqueue(pending: Pending): void {
    if (this.queue.length >= this.settings.queueMaxMessages) {
      this.counters.dropped++;
      return;
    }
    this.queue.push(pending);
    this.counters.queued++;
    this.schedule(this.settings.sendIntervalMs);
  }

  /** Calls queued or in Kafka's hands, not yet acknowledged nor spooled. */
  pending(): number {
    return this.queue.length + this.inFlight.length;
  }

  private schedule(delayMs: number): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, delayMs);
    this.timer.unref(); // a pending send never keeps the process alive; beforeExit flushes
  }

  /** One pass: send what is queued, then the spool's backlog if Kafka answers. */
  private run(): Promise<void> {
    if (this.running === null) {
      this.running = this.pass().finally(() => {
        this.running = null;
        if (this.queue.length >= this.transport.batchMax) this.schedule(0); // a burst: the next batch now
        else if (this.queue.length > 0) this.schedule(this.settings.sendIntervalMs);
      });
    }
    return this.running;
  }

  /**
   * Build up to `max` queued calls (the oldest first) into records: a burst is built and sent
   * a transport batch at a time (one large Kafka request would pass the broker's message size
   * limit and be refused), so no pass holds the application's event loop for long.
   */
  private build(max = Infinity): SpoolRecord[] {
    const taken = max >= this.queue.length ? this.queue : this.queue.slice(0, max);
    this.queue = taken === this.queue ? [] : this.queue.slice(max);
    const records: SpoolRecord[] = [];
    for (const pending of taken) {
      const record = this.buildRecord(pending);
      if (record === null) this.counters.buildFailed++;
      else records.push(record);
    }
    return records;
  }

  private async pass(): Promise<void> {
    const records = this.build(this.transport.batchMax);
    if (records.length > 0) {
      this.inFlight = records;
      try {
        const refused = await this.send(records);
        this.counters.sent += records.length - refused;
        this.counters.refused += refused;
      } catch {
        this.toSpool(records);
      } finally {
        this.inFlight = [];
      }
    }
    if (this.kafkaUp && this.spool?.backlog()) await this.resend();
    else if (!this.kafkaUp && this.spool?.backlog() && records.length === 0) await this.probe();
  }

  private async probe(): Promise<void> {
    try {
      await this.transport.probe();
      this.kafkaUp = true;
      await this.resend();
    } catch {
      // still away: the next queued call tries again
    }
  }

  private async resend(): Promise<void> {
    const spool = this.spool;
    if (spool === null) return;
    for (let path = spool.claim(); path !== null; path = spool.claim()) {
      const records = spool.read(path);
      let refused = 0;
      for (let i = 0; i < records.length; i += this.transport.batchMax) {
        refused += await this.send(records.slice(i, i + this.transport.batchMax)); // throws: the claim stays
      }
      spool.done(path);
      this.counters.resent += records.length - refused;
      this.counters.refused += refused;
    }
  }

  private toSpool(records: SpoolRecord[]): void {
    this.kafkaUp = false;
    if (this.spool === null) {
      this.counters.dropped += records.length;
      return;
    }
    const kept = this.spool.append(records);
    this.counters.spooled += kept;
    this.counters.dropped += records.length - kept;
  }

  private async send(records: SpoolRecord[]): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer in time")), this.settings.requestTimeoutMs);
    });
    try {
      const refused = await Promise.race([this.transport.send(records), timeout]);
      this.kafkaUp = true;
      return refused;
    } catch (err) {
      this.transport.reset();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Wait up to `timeoutMs` for queued calls to be sent or spooled; how many remain. */
  async flush(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending() > 0 || this.running !== null || this.timer !== null) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      if (this.timer !== null) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        this.run(),
        new Promise((resolve) => {
          timeout = setTimeout(resolve, left);
        }),
      ]);
      clearTimeout(timeout);
    }
    return this.pending();
  }

  /**
   * Within `timeoutMs`, what Kafka acknowledges is sent; the rest (queued or in flight) goes
   * to the spool for the next process. Idempotent.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    const keepAlive = setInterval(() => undefined, 1_000); // the sockets alone would not
    try {
      await this.closeWithin(timeoutMs);
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async closeWithin(timeoutMs: number): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    this.spoolNow();
    await this.transport.close();
  }

  /**
   * Synchronously: everything not acknowledged goes to the spool (the last resort of
   * `process.on("exit")`, where nothing asynchronous runs). A batch in flight may then be
   * sent twice; the processor deduplicates by event_id.
   */
  spoolNow(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const records = [...this.inFlight, ...this.build()];
    this.inFlight = [];
    this.toSpool(records);
  }
}
