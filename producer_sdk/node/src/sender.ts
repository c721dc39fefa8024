/**
 * The background sender: calls queued by the wrappers are built into events and encoded on a
 * timer, off the caller's path, and the batch goes to Kafka through the sender's worker thread
 * (kafka-thread.ts: kafkajs, idempotent, runs there, so its encoding and protocol work stays
 * off the application's event loop). A batch Kafka refuses or does not answer goes to the disk
 * spool; the spool is re-sent when Kafka answers again. Until Kafka acknowledges a batch, this
 * thread keeps it (`inFlight`), so the exit path can spool it.
 *
 * Nothing here keeps the process alive (the worker is unref'd) but a send in flight, which
 * holds the process open with its own timer, which also bounds it: past `requestTimeoutMs` the
 * batch goes to the spool and the worker is replaced (a late acknowledgement then means a
 * duplicate, which the pipeline's upsert by event_id absorbs).
 */
import { KafkaThread } from "./kafka-thread.js";
import type { Settings } from "./settings.js";
import { DiskSpool, type SpoolRecord } from "./spool.js";

export interface Counters {
  queued: number;
  sent: number;
  spooled: number;
  resent: number;
  dropped: number;
  buildFailed: number;
}

/** A queued call: builds its encoded record, or null when building failed (counted). */
export type Pending = () => SpoolRecord | null;

/**
 * Records per produce request, and calls built per pass: a burst of calls is sent in requests
 * of this size (one large request would pass Kafka's message size limit and be refused), and
 * built a batch at a time, so no pass holds the application's event loop for long.
 */
const BATCH = 500;

export class Sender {
  readonly counters: Counters = { queued: 0, sent: 0, spooled: 0, resent: 0, dropped: 0, buildFailed: 0 };
  private queue: Pending[] = [];
  private inFlight: SpoolRecord[] = [];
  private readonly kafka: KafkaThread;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private kafkaUp = false;
  readonly spool: DiskSpool | null;
  closed = false;

  constructor(readonly settings: Settings) {
    this.kafka = new KafkaThread(settings);
    this.spool = settings.spoolEnabled ? new DiskSpool(settings.spoolDir, settings.spoolMaxBytes) : null;
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
        if (this.queue.length >= BATCH) this.schedule(0); // a burst: the next batch now
        else if (this.queue.length > 0) this.schedule(this.settings.sendIntervalMs);
      });
    }
    return this.running;
  }

  /** Build up to `max` queued calls (the oldest first) into records. */
  private build(max = Infinity): SpoolRecord[] {
    const taken = max >= this.queue.length ? this.queue : this.queue.slice(0, max);
    this.queue = taken === this.queue ? [] : this.queue.slice(max);
    const records: SpoolRecord[] = [];
    for (const pending of taken) {
      const record = pending();
      if (record === null) this.counters.buildFailed++;
      else records.push(record);
    }
    return records;
  }

  private async pass(): Promise<void> {
    const records = this.build(BATCH);
    if (records.length > 0) {
      this.inFlight = records;
      try {
        await this.send(records);
        this.counters.sent += records.length;
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
      await this.kafka.connect();
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
      for (let i = 0; i < records.length; i += BATCH) {
        await this.send(records.slice(i, i + BATCH)); // throws: the claim stays for later
      }
      spool.done(path);
      this.counters.resent += records.length;
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

  private async send(records: SpoolRecord[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("Kafka did not answer in time")), this.settings.requestTimeoutMs);
    });
    try {
      await Promise.race([this.kafka.send(records), timeout]);
      this.kafkaUp = true;
    } catch (err) {
      this.kafka.reset();
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
    await this.kafka.close(1_000);
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
