/**
 * UsageEvent in Avro single-object encoding: `C3 01`, the writer schema's CRC-64-AVRO
 * fingerprint (8 bytes, little-endian), then the Avro body. The schemas come from the
 * repository's schemas/ at build time (schemas.generated.ts), never written by hand.
 */
import avro from "avsc";
import { RECORD_NAME, SCHEMAS } from "./schemas.generated.js";
import type { UsageEvent } from "./types.js";

const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;
const TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n) & MASK);
  return fp;
});

/** CRC-64-AVRO (the Avro specification's Rabin fingerprint) of `text`, little-endian. */
export function fingerprint64(text: string): Buffer {
  let fp = EMPTY;
  for (const byte of Buffer.from(text, "utf8")) {
    fp = (fp >> 8n) ^ (TABLE[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint);
  }
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp);
  return out;
}

function parseAll(): avro.Type {
  const registry: Record<string, avro.Type> = {};
  const pending = new Map(Object.entries(SCHEMAS));
  while (pending.size > 0) {
    let progressed = false;
    for (const [name, schema] of pending) {
      const attempt = { ...registry }; // a failed parse may leave names behind
      try {
        avro.Type.forSchema(schema as avro.Schema, { registry: attempt });
      } catch {
        continue; // refers to a type not parsed yet
      }
      Object.assign(registry, attempt);
      pending.delete(name);
      progressed = true;
    }
    if (!progressed) throw new Error(`cannot parse schemas: ${[...pending.keys()].join(", ")}`);
  }
  const type = registry[RECORD_NAME];
  if (type === undefined) throw new Error(`${RECORD_NAME} is not among the shipped schemas`);
  return type;
}

export const USAGE_EVENT_TYPE = parseAll();
/** The parsing canonical form's fingerprint, as in the single-object header. */
export const USAGE_EVENT_FINGERPRINT = fingerprint64(JSON.stringify(USAGE_EVENT_TYPE.schema()));
const HEADER = Buffer.concat([Buffer.from([0xc3, 0x01]), USAGE_EVENT_FINGERPRINT]);

/** The event's single-object bytes; throws when it does not fit the schema. */
export function encodeUsageEvent(event: UsageEvent): Buffer {
  return Buffer.concat([HEADER, USAGE_EVENT_TYPE.toBuffer(event)]);
}

/** The record inside single-object bytes written with this schema (for tests and tools). */
export function decodeUsageEvent(data: Buffer): UsageEvent {
  if (data.length < 10 || data[0] !== 0xc3 || data[1] !== 0x01) {
    throw new Error("not Avro single-object encoding");
  }
  if (!data.subarray(2, 10).equals(USAGE_EVENT_FINGERPRINT)) {
    throw new Error(`unknown writer fingerprint ${data.subarray(2, 10).toString("hex")}`);
  }
  // Plain objects (avsc gives instances of generated record classes).
  return structuredClone(USAGE_EVENT_TYPE.fromBuffer(data.subarray(10))) as UsageEvent;
}
