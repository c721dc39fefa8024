/**
 * A bounded on-disk spool of encoded Kafka records, kept while the broker is away.
 *
 * Segment files `<pid>-<ns>.seg` in one directory; each record is (as the Python SDK's spool):
 * length u32 BE, CRC-32 u32 BE of the body, body = key length u16 (0xFFFF: no key) | key |
 * value. Records are written with one synchronous write per batch and fsync'd, so the exit
 * path can spool from `process.on("exit")`. A segment is claimed for re-sending by renaming
 * it (atomic), so two processes never send the same one; a claim whose process is gone is
 * taken over. A partial record at a segment's end (a crash mid-write) ends the reading there.
 * Past `maxBytes` a record is dropped and counted: the only way the SDK loses an event.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";

export interface SpoolRecord {
  key: Buffer | null;
  value: Buffer;
}

const NO_KEY = 0xffff;

function encode(records: SpoolRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const { key, value } of records) {
    const body = Buffer.alloc(2 + (key?.length ?? 0) + value.length);
    body.writeUInt16BE(key === null ? NO_KEY : key.length, 0);
    if (key !== null) key.copy(body, 2);
    value.copy(body, 2 + (key?.length ?? 0));
    const header = Buffer.alloc(8);
    header.writeUInt32BE(body.length, 0);
    header.writeUInt32BE(crc32(body) >>> 0, 4);
    parts.push(header, body);
  }
  return Buffer.concat(parts);
}

/** The records of a segment's bytes, up to the first one that does not check out. */
export function decode(data: Buffer): SpoolRecord[] {
  const out: SpoolRecord[] = [];
  let at = 0;
  while (at + 8 <= data.length) {
    const length = data.readUInt32BE(at);
    const crc = data.readUInt32BE(at + 4);
    const body = data.subarray(at + 8, at + 8 + length);
    if (body.length !== length || length < 2 || (crc32(body) >>> 0) !== crc) break;
    const keyLength = body.readUInt16BE(0);
    const key = keyLength === NO_KEY ? null : Buffer.from(body.subarray(2, 2 + keyLength));
    out.push({ key, value: Buffer.from(body.subarray(2 + (key?.length ?? 0))) });
    at += 8 + length;
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class DiskSpool {
  private active: string | null = null;
  /** Records dropped because the spool was full. */
  dropped = 0;
  /** Records written to the spool. */
  spooled = 0;

  constructor(
    readonly directory: string,
    readonly maxBytes: number,
  ) {
    mkdirSync(directory, { recursive: true });
  }

  private size(): number {
    let total = 0;
    for (const name of readdirSync(this.directory)) {
      try {
        total += statSync(join(this.directory, name)).size;
      } catch {
        // removed meanwhile
      }
    }
    return total;
  }

  /** Append `records` (synchronously, fsync'd); the ones past the bound are dropped. */
  append(records: SpoolRecord[]): number {
    if (records.length === 0) return 0;
    let room = this.maxBytes - this.size();
    const kept: SpoolRecord[] = [];
    for (const record of records) {
      const size = 10 + (record.key?.length ?? 0) + record.value.length;
      if (size > room) {
        this.dropped++;
        continue;
      }
      room -= size;
      kept.push(record);
    }
    if (kept.length === 0) return 0;
    if (this.active === null) {
      this.active = join(this.directory, `${process.pid}-${process.hrtime.bigint()}.seg`);
    }
    const fd = openSync(this.active, "a");
    try {
      writeSync(fd, encode(kept));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.spooled += kept.length;
    return kept.length;
  }

  /** Whether any segment (this process's or another's) waits to be re-sent. */
  backlog(): boolean {
    return readdirSync(this.directory).some((n) => n.endsWith(".seg") || /\.claim-\d+$/.test(n));
  }

  /**
   * Claim the next segment to re-send: its path (renamed to this process's claim) or null.
   * This process's active segment is sealed first, so new records go to a new one.
   */
  claim(): string | null {
    this.active = null;
    for (const name of readdirSync(this.directory).sort()) {
      const claimed = /\.claim-(\d+)$/.exec(name);
      if (claimed && Number(claimed[1]) === process.pid) return join(this.directory, name);
      if (claimed && alive(Number(claimed[1]))) continue;
      if (!claimed && !name.endsWith(".seg")) continue;
      const owner = Number(name.split("-")[0]);
      if (!claimed && owner !== process.pid && alive(owner)) continue; // another live writer's
      const base = claimed ? name.slice(0, claimed.index) : name;
      const target = join(this.directory, `${base}.claim-${process.pid}`);
      try {
        renameSync(join(this.directory, name), target);
        return target;
      } catch {
        continue; // another process took it
      }
    }
    return null;
  }

  /** The records of a claimed segment. */
  read(path: string): SpoolRecord[] {
    return decode(readFileSync(path));
  }

  /** The claimed segment is sent: remove it. */
  done(path: string): void {
    unlinkSync(path);
  }
}
