/**
 * The sender's transports' interface, and the Kafka transport: Avro single-object records to
 * the raw topic through the kafkajs producer (kafka-producer.ts: idempotent, acks=all, one
 * request in flight, keyed by tenant with the Java-compatible murmur2 partitioner), which runs
 * in the sender's worker thread (kafka-worker.ts, reached through kafka-thread.ts), so its
 * record encoding and protocol work stays off the application's event loop. This module runs
 * on the application's thread and never loads kafkajs.
 *
 * Nothing here keeps the process alive: the worker is unref'd, and in it the broker sockets
 * are unref'd and kafkajs's per-connection request-timeout interval is off (the sender bounds
 * each send with its own timer).
 */
import { KafkaThread } from "./kafka-thread.js";
import type { Settings } from "./settings.js";
import type { SpoolRecord } from "./spool.js";

/** Where the sender's batches go: Kafka, or the HTTP API (`http.ts`). */
export interface Transport {
  /** Deliver `records`; resolves to how many were refused as invalid (dropped), else throws. */
  send(records: SpoolRecord[]): Promise<number>;
  /** Resolves when the far end answers (the spool is re-sent then); throws otherwise. */
  probe(): Promise<void>;
  /** Forget connections after a failure: the next send starts afresh. */
  reset(): void;
  /** Release connections (within about a second). */
  close(): Promise<void>;
  /** The last problem the far end reported, until a batch is delivered again. */
  readonly error: string | null;
  /** Records per request at most: the sender builds, sends and re-sends batches of this size. */
  readonly batchMax: number;
}

/**
 * Records per produce request: one request past Kafka's message size limit (1 MB) is refused
 * whole, which a burst of tens of thousands of calls a second reached.
 */
export const KAFKA_BATCH = 500;

export class KafkaTransport implements Transport {
  private readonly thread: KafkaThread;
  readonly batchMax = KAFKA_BATCH;
  error: string | null = null;

  constructor(settings: Settings) {
    this.thread = new KafkaThread(settings);
  }

  async probe(): Promise<void> {
    await this.thread.connect();
  }

  async send(records: SpoolRecord[]): Promise<number> {
    try {
      for (let i = 0; i < records.length; i += KAFKA_BATCH) {
        await this.thread.send(records.slice(i, i + KAFKA_BATCH));
      }
    } catch (err) {
      this.error = String((err as Error)?.message ?? err);
      throw err;
    }
    this.error = null;
    return 0;
  }

  /** Stop the worker (after a failure): the next send starts a fresh one. */
  reset(): void {
    this.thread.reset();
  }

  async close(): Promise<void> {
    await this.thread.close(1_000);
  }
}
