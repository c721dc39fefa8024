/**
 * The kafkajs producer (idempotent, acks=all, one request in flight, keyed by tenant with the
 * Java-compatible murmur2 partitioner). It runs in the sender's worker thread (kafka-worker.ts),
 * so its encoding and protocol work never runs on the application's event loop; the Kafka
 * transport (kafka.ts) hands it its batches through kafka-thread.ts. Only the worker loads it
 * (and kafkajs).
 *
 * The broker connections never keep a process alive: their sockets are unref'd and kafkajs's
 * per-connection request-timeout interval is off (the main thread bounds each send itself).
 */
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { CompressionTypes, Kafka, type ISocketFactory, logLevel, type Producer } from "kafkajs";
import { fixKafkajsTimerLoop } from "./kafkajs-fix.js";
import type { Settings } from "./settings.js";

/** kafkajs's own socket factory, with each socket unref'd. */
const unrefSockets: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket = ssl
    ? tlsConnect({ host, port, servername: host, ...(typeof ssl === "object" ? ssl : {}) }, onConnect)
    : netConnect({ host, port }, onConnect);
  socket.setKeepAlive(true, 60_000);
  socket.unref();
  return socket;
};

/** A record as it crosses to the worker: the key and the encoded event. */
export interface WireRecord {
  key: Uint8Array | null;
  value: Uint8Array;
}

const buffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export class KafkaProducer {
  private producer: Producer | null = null;
  private connected: Promise<void> | null = null;

  constructor(readonly settings: Settings) {}

  connect(): Promise<void> {
    if (this.connected === null) {
      const s = this.settings;
      if (!s.bootstrapServers) throw new Error("bootstrapServers: required (TOKENLINE_BOOTSTRAP_SERVERS)");
      fixKafkajsTimerLoop();
      const kafka = new Kafka({
        clientId: `tokenline-sdk-node-${s.serviceName ?? "app"}`,
        brokers: s.bootstrapServers.split(","),
        logLevel: logLevel.NOTHING,
        socketFactory: unrefSockets,
        connectionTimeout: Math.min(s.requestTimeoutMs, 3_000),
        requestTimeout: s.requestTimeoutMs,
        enforceRequestTimeout: false, // its interval would keep the process alive; the sender times out
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
      });
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      this.producer = producer;
      this.connected = producer.connect().catch((err: unknown) => {
        this.reset();
        throw err;
      });
    }
    return this.connected;
  }

  async send(records: WireRecord[]): Promise<void> {
    await this.connect();
    await (this.producer as Producer).send({
      topic: this.settings.topic,
      acks: -1,
      timeout: this.settings.requestTimeoutMs,
      compression: this.settings.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
      messages: records.map((r) => ({ key: r.key === null ? null : buffer(r.key), value: buffer(r.value) })),
    });
  }

  /** Drop the producer (after a failure): the next send connects afresh. */
  reset(): void {
    const producer = this.producer;
    this.producer = null;
    this.connected = null;
    if (producer !== null) void producer.disconnect().catch(() => undefined);
  }

  async close(): Promise<void> {
    const producer = this.producer;
    this.producer = null;
    this.connected = null;
    if (producer !== null) await producer.disconnect().catch(() => undefined);
  }
}
