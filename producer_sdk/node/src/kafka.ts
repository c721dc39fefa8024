/**
 * The Kafka transport: kafkajs (idempotent producer, acks=all, one request in flight, keyed by
 * tenant with the Java-compatible murmur2 partitioner), Avro single-object records.
 *
 * The broker connections never keep the process alive (their sockets are unref'd and kafkajs's
 * per-connection request-timeout interval is off, as the Python SDK's sender thread is a
 * daemon): a script ends when its own work is done.
 */
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { CompressionTypes, Kafka, type ISocketFactory, logLevel, type Producer } from "kafkajs";
import { fixKafkajsTimerLoop } from "./kafkajs-fix.js";
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
}

/** kafkajs's own socket factory, with each socket unref'd. */
const unrefSockets: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket = ssl
    ? tlsConnect({ host, port, servername: host, ...(typeof ssl === "object" ? ssl : {}) }, onConnect)
    : netConnect({ host, port }, onConnect);
  socket.setKeepAlive(true, 60_000);
  socket.unref();
  return socket;
};

export class KafkaTransport implements Transport {
  private producer: Producer | null = null;
  private connected: Promise<void> | null = null;
  error: string | null = null;

  constructor(private readonly settings: Settings) {}

  private connect(): Promise<void> {
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
        enforceRequestTimeout: false, // its interval would keep the process alive; send() times out
        retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
      });
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      this.producer = producer;
      this.connected = producer.connect().catch((err: unknown) => {
        this.connected = null;
        this.producer = null;
        void producer.disconnect().catch(() => undefined);
        throw err;
      });
    }
    return this.connected;
  }

  async probe(): Promise<void> {
    await this.connect();
  }

  async send(records: SpoolRecord[]): Promise<number> {
    try {
      await this.connect();
      const producer = this.producer as Producer;
      await producer.send({
        topic: this.settings.topic,
        acks: -1,
        timeout: this.settings.requestTimeoutMs,
        compression: this.settings.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
        messages: records.map((r) => ({ key: r.key, value: r.value })),
      });
    } catch (err) {
      this.error = String((err as Error).message ?? err);
      throw err;
    }
    this.error = null;
    return 0;
  }

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
    if (producer !== null) {
      await Promise.race([producer.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
    }
  }
}
