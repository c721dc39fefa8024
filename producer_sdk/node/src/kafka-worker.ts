/**
 * The sender's worker thread: it owns the kafkajs producer. The main thread posts
 * `{ id, op: "connect" | "send" | "close", batch? }` (a send's records packed into one
 * transferred ArrayBuffer, wire.ts); each is answered `{ id, ok, error? }`
 * once Kafka acknowledged (or refused) it. Requests run one at a time, in order.
 */
import { parentPort, workerData } from "node:worker_threads";
import { KafkaProducer } from "./kafka-producer.js";
import type { Settings } from "./settings.js";
import { unpackRecords } from "./wire.js";

export interface Request {
  id: number;
  op: "connect" | "send" | "close";
  /** The records of a send (wire.ts's packing). */
  batch?: ArrayBuffer;
}

export interface Reply {
  id: number;
  ok: boolean;
  error?: string;
}

const port = parentPort;
if (port !== null) {
  const producer = new KafkaProducer(workerData as Settings);
  let chain: Promise<void> = Promise.resolve();
  const handle = async ({ id, op, batch }: Request): Promise<void> => {
    try {
      if (op === "connect") await producer.connect();
      else if (op === "send") await producer.send(batch === undefined ? [] : unpackRecords(batch));
      else await producer.close();
      port.postMessage({ id, ok: true } satisfies Reply);
    } catch (err) {
      producer.reset();
      port.postMessage({ id, ok: false, error: String((err as Error)?.message ?? err) } satisfies Reply);
    }
  };
  port.on("message", (request: Request) => {
    chain = chain.then(() => handle(request));
  });
}
