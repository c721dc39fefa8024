/** `track()` and `record()`: meter any call, or record one whose usage you already know. */
import { Call } from "./call.js";
import { type Attribution, merged } from "./context.js";
import { currentRuntime } from "./runtime.js";
import type { Operation, Provider, Usage } from "./types.js";
import { emptyUsage } from "./usage.js";

export type Counts = Partial<Omit<Usage, "mismatch">>;

export interface TrackOptions extends Attribution {
  provider?: Provider;
  operation?: Operation;
  model?: string;
  batch?: boolean;
  /** Turns what `fn` returned (awaited) into token counts (keys of the usage vector). */
  extractor?: (result: unknown) => Counts;
}

function setUsage(call: Call, counts: Counts): void {
  call.usage = { ...emptyUsage(), ...counts };
  call.usageSource = "reported";
}

function newCall(options: TrackOptions): Call | null {
  const rt = currentRuntime();
  if (rt === null) return null;
  const { provider, operation, model, batch, extractor: _e, ...attribution } = options;
  const given = Object.fromEntries(Object.entries(attribution).filter(([, v]) => v !== undefined));
  const call = new Call(provider ?? "other", operation ?? "other", merged({ ...rt.base, ...given }));
  call.requestModel = model ?? null;
  call.batch = batch ?? false;
  return call;
}

function end(call: Call | null, options: TrackOptions, result: unknown, error: unknown, failed: boolean): void {
  const rt = currentRuntime();
  if (call === null || rt === null) return;
  try {
    call.end();
    if (failed) call.failed(error);
    else if (options.extractor) setUsage(call, options.extractor(result));
    rt.finish(call);
  } catch (err) {
    rt.swallowed(err);
  }
}

/**
 * Run `fn` as one metered call: its result (awaited when it is a promise) goes through
 * `extractor`; an error or rejection is recorded as a failed call and reaches the caller
 * unchanged. Returns exactly what `fn` returns.
 */
export function track<T>(options: TrackOptions, fn: () => T): T {
  let call: Call | null = null;
  try {
    call = newCall(options);
  } catch {
    call = null;
  }
  let result: T;
  try {
    result = fn();
  } catch (err) {
    end(call, options, undefined, err, true);
    throw err;
  }
  if (result instanceof Promise) {
    result.then(
      (value) => end(call, options, value, null, false),
      (err) => end(call, options, undefined, err, true),
    );
  } else {
    end(call, options, result, null, false);
  }
  return result;
}

export interface RecordOptions extends Attribution {
  provider?: Provider;
  operation?: Operation;
  model?: string;
  responseModel?: string;
  batch?: boolean;
  streamed?: boolean;
  latencyMs?: number;
  success?: boolean;
  usage: Counts;
}

/** Record a call whose usage you know (from a provider the SDK does not wrap). */
export function record(options: RecordOptions): void {
  const rt = currentRuntime();
  if (rt === null) return;
  try {
    const { usage, responseModel, streamed, latencyMs, success, ...rest } = options;
    const call = newCall(rest);
    if (call === null) return;
    call.responseModel = responseModel ?? null;
    call.streamed = streamed ?? false;
    call.success = success ?? true;
    call.endedNs = call.startedNs + BigInt(Math.max(0, Math.round(latencyMs ?? 0))) * 1_000_000n;
    setUsage(call, usage);
    rt.finish(call);
  } catch (err) {
    rt.swallowed(err);
  }
}
