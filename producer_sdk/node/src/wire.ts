/**
 * A batch of records as it crosses to the sender's worker thread: one ArrayBuffer, transferred
 * (moved, not copied nor cloned record by record) with `postMessage`. Each record is its key's
 * length (u32 little-endian; 0xFFFFFFFF: no key), the key, the value's length (u32 LE), the
 * value. The main thread keeps its own records (for the spool) until Kafka acknowledges them.
 */
import type { SpoolRecord } from "./spool.js";

const NO_KEY = 0xffffffff;

/** `records` packed into a fresh ArrayBuffer of their own (never a pooled one). */
export function packRecords(records: readonly SpoolRecord[]): ArrayBuffer {
  let size = 0;
  for (const { key, value } of records) size += 8 + (key === null ? 0 : key.length) + value.length;
  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let at = 0;
  for (const { key, value } of records) {
    if (key === null) {
      view.setUint32(at, NO_KEY, true);
      at += 4;
    } else {
      view.setUint32(at, key.length, true);
      bytes.set(key, at + 4);
      at += 4 + key.length;
    }
    view.setUint32(at, value.length, true);
    bytes.set(value, at + 4);
    at += 4 + value.length;
  }
  return buffer;
}

/** The records in a packed batch, as Buffers viewing it (no copy). */
export function unpackRecords(buffer: ArrayBuffer): SpoolRecord[] {
  const view = new DataView(buffer);
  const records: SpoolRecord[] = [];
  let at = 0;
  while (at < buffer.byteLength) {
    const keyLength = view.getUint32(at, true);
    at += 4;
    let key: Buffer | null = null;
    if (keyLength !== NO_KEY) {
      key = Buffer.from(buffer, at, keyLength);
      at += keyLength;
    }
    const valueLength = view.getUint32(at, true);
    at += 4;
    if (at + valueLength > buffer.byteLength) throw new Error("a packed record batch ends inside a record");
    records.push({ key, value: Buffer.from(buffer, at, valueLength) });
    at += valueLength;
  }
  return records;
}
