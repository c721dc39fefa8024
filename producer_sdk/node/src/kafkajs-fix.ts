/**
 * kafkajs 2.2.4 (its last release) re-arms a 1 ms timer forever once a connection exists, even
 * with nothing to check (upstream issues #1556, #1604, #1704; fix proposed in PR #1667): it
 * burns CPU in the application's process and keeps the process alive. The proposed fix, applied
 * here: with no request pending, nothing is scheduled (a request queued later schedules its
 * own check). Applied once, to the kafkajs copy this package loads (pinned to 2.2.4).
 */
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

interface Queue {
  pending: unknown[];
}

let applied = false;

export function fixKafkajsTimerLoop(): void {
  if (applied) return;
  applied = true;
  const proto = (RequestQueue as unknown as { prototype: Record<string, unknown> }).prototype;
  const original = proto.scheduleCheckPendingRequests as (this: Queue) => void;
  proto.scheduleCheckPendingRequests = function (this: Queue): void {
    if (this.pending.length === 0) return;
    original.call(this);
  };
}
