/**
 * The main thread's handle on the sender's worker thread (kafka-worker.ts), which runs the
 * kafkajs producer: record batches go there (each one transferred ArrayBuffer, wire.ts) and
 * come back acknowledged or refused. The worker
 * is unref'd (it never keeps the process alive; a send waiting for its answer holds the
 * process open with the sender's own timer), started on first use and replaced after a failure.
 */
import { Worker } from "node:worker_threads";
import type { Reply, Request } from "./kafka-worker.js";
import type { Settings } from "./settings.js";
import type { SpoolRecord } from "./spool.js";
import { packRecords } from "./wire.js";
import { WORKER_URL } from "./worker-url.js";

interface Waiting {
  resolve(): void;
  reject(err: Error): void;
}

export class KafkaThread {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly waiting = new Map<number, Waiting>();

  constructor(readonly settings: Settings) {}

  connect(): Promise<void> {
    return this.request("connect");
  }

  /** Send `records`: packed into one ArrayBuffer, transferred to the worker (wire.ts). */
  send(records: readonly SpoolRecord[]): Promise<void> {
    return this.request("send", packRecords(records));
  }

  /** Stop the worker (after a failure): the next request starts a fresh one. */
  reset(): void {
    const worker = this.worker;
    this.worker = null;
    this.failAll(new Error("the Kafka worker was reset"));
    if (worker !== null) void worker.terminate();
  }

  /** Disconnect the producer (within `timeoutMs`) and stop the worker. */
  async close(timeoutMs: number): Promise<void> {
    if (this.worker === null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.request("close").catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.reset();
  }

  private request(op: Request["op"], batch?: ArrayBuffer): Promise<void> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (batch === undefined) worker.postMessage({ id, op } satisfies Request);
      else worker.postMessage({ id, op, batch } satisfies Request, [batch]);
    });
  }

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(WORKER_URL, { workerData: { ...this.settings } });
    worker.on("message", (reply: Reply) => {
      const waiting = this.waiting.get(reply.id);
      if (waiting === undefined) return;
      this.waiting.delete(reply.id);
      if (reply.ok) waiting.resolve();
      else waiting.reject(new Error(reply.error ?? "Kafka refused the request"));
    });
    const gone = (err: unknown): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.failAll(err instanceof Error ? err : new Error(`the Kafka worker exited (${String(err)})`));
    };
    worker.on("error", gone);
    worker.on("exit", gone);
    worker.unref(); // after the listeners: adding a "message" listener refs the worker again
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(err);
  }
}
