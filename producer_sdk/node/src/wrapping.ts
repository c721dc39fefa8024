/**
 * How a provider method is metered without changing what it returns or throws.
 *
 * The wrapped method returns the very object the original returned (the SDKs' `APIPromise`,
 * with `.withResponse()` and `.asResponse()` intact). The outcome is observed through the
 * promise's own `parse()` (so nothing is parsed that the caller did not ask for), and a stream
 * result's iterator is replaced on the stream object itself, before the caller sees it: the
 * caller's chunks pass through (less any the SDK asked for and the caller did not). Every
 * SDK step runs inside a guard: its failure is counted and the call goes on untouched.
 */
import { Call } from "./call.js";
import { type Attribution, merged } from "./context.js";
import { currentRuntime, type Runtime } from "./runtime.js";
import type { Operation, Provider } from "./types.js";

/** Turns the stream's own iterator into the metering one. */
export type Meter = (inner: AsyncIterator<unknown>) => AsyncIterator<unknown>;

/** What one stream run learns; `onChunk` returns false to hide a chunk from the caller. */
export interface StreamSpec {
  onChunk(call: Call, chunk: unknown): boolean;
  /**
   * Whether `onChunk` may hide a chunk. When it may not, the caller gets the inner iterator's
   * own promises and the chunks are read beside them (no promise hop added per chunk).
   */
  mayHide?: boolean;
  /** Fill the call in once the stream ended; runs on the sender's timer, off the caller's path. */
  onEnd?(call: Call): void;
  /**
   * Put the metering iterator in place on the result, in place (the caller keeps the very
   * objects the client returned); false when the result is not a stream after all. Without
   * it: the result's `iterator()` method (the `openai` and `@anthropic-ai/sdk` Stream).
   */
  attach?(result: unknown, meter: Meter): boolean;
}

export interface Method {
  operation: Operation;
  /** Read the request (may return a changed copy of the body, never changing the caller's). */
  begin?(call: Call, body: Record<string, unknown>): Record<string, unknown>;
  /** Read a plain result (runs off the caller's path, on the sender's timer). */
  finish(call: Call, result: unknown): void;
  /** For a streamed request: how its chunks are read. */
  stream?(call: Call, body: Record<string, unknown>, result: unknown): StreamSpec | null;
  /** Whether this request streams (default: `body.stream === true`). */
  streams?(body: Record<string, unknown>): boolean;
}

/** The Method for one call, chosen from its arguments; null leaves the call unmetered. */
export type Chooser = (args: unknown[]) => Method | null;

type Fn = (this: unknown, ...args: unknown[]) => unknown;

function guarded<T>(rt: Runtime, fallback: T, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    rt.swallowed(err);
    return fallback;
  }
}

/** Replace `owner[name]` (an instance property shadowing the prototype's method). */
export function patch(
  owner: Record<string, unknown> | undefined,
  name: string,
  method: Method | Chooser,
  provider: Provider,
  attribution: Attribution,
): void {
  if (owner === undefined || owner === null) return;
  const original = owner[name];
  if (typeof original !== "function" || (original as { __tokenline?: boolean }).__tokenline) return;
  // The settings' attribution under the wrap's, merged once per runtime (not once per call).
  let baseOf: Runtime | null = null;
  let base: Attribution = {};
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    const rt = currentRuntime();
    if (rt === null) return (original as Fn).apply(this, args);
    const chosen = typeof method === "function" ? guarded(rt, null, () => method(args)) : method;
    if (chosen === null) return (original as Fn).apply(this, args);
    if (baseOf !== rt) {
      base = Object.freeze({ ...rt.base, ...attribution, tags: { ...attribution.tags } });
      baseOf = rt;
    }
    const started = guarded(rt, null, () => start(chosen, provider, base, args));
    const result = (original as Fn).apply(this, started?.args ?? args);
    if (started !== null) guarded(rt, undefined, () => observe(rt, chosen, started, result));
    return result;
  };
  Object.defineProperty(wrapped, "__tokenline", { value: true });
  Object.defineProperty(wrapped, "name", { value: (original as Fn).name });
  owner[name] = wrapped;
}

interface Started {
  call: Call;
  body: Record<string, unknown>;
  args: unknown[];
}

function start(method: Method, provider: Provider, base: Attribution, args: unknown[]): Started {
  const call = new Call(provider, method.operation, merged(base));
  const given = args[0];
  const body = given !== null && typeof given === "object" ? (given as Record<string, unknown>) : {};
  const sent = method.begin ? method.begin(call, body) : body;
  return { call, body, args: sent === body ? args : [sent, ...args.slice(1)] };
}

function observe(rt: Runtime, method: Method, started: Started, result: unknown): void {
  const { call, body } = started;
  const ok = (value: unknown): void => {
    guarded(rt, undefined, () => {
      const streams = method.streams ? method.streams(body) : body.stream === true;
      const spec = streams && method.stream ? method.stream(call, body, value) : null;
      if (spec !== null) {
        call.streamed = true;
        meterStream(rt, call, spec, value);
      } else {
        call.end();
        rt.finish(call, () => method.finish(call, value));
      }
    });
  };
  const failed = (err: unknown): void => {
    guarded(rt, undefined, () => {
      call.end();
      call.failed(err);
      rt.finish(call);
    });
  };
  const promise = result as { parse?: () => Promise<unknown>; then?: unknown };
  if (promise !== null && typeof promise === "object" && typeof promise.parse === "function") {
    // The SDKs' APIPromise: parse() is what then/catch/finally/withResponse all go through.
    const parse = promise.parse;
    let seen = false;
    promise.parse = function (this: unknown): Promise<unknown> {
      const parsed = parse.call(this);
      if (!seen) {
        seen = true;
        parsed.then(ok, failed);
      }
      return parsed;
    };
  } else if (promise !== null && typeof promise === "object" && typeof promise.then === "function") {
    (promise as Promise<unknown>).then(ok, failed);
  } else {
    ok(result);
  }
}

/**
 * Put a metering iterator in place of the stream's own (by default the stream object's
 * `iterator()` method, as `openai` and `@anthropic-ai/sdk` streams have).
 */
function meterStream(rt: Runtime, call: Call, spec: StreamSpec, stream: unknown): void {
  const meter: Meter = (inner) => metered(rt, call, spec, inner);
  const attach = spec.attach ?? attachIterator;
  if (!attach(stream, meter)) {
    call.end();
    rt.finish(call);
  }
}

function attachIterator(stream: unknown, meter: Meter): boolean {
  const target = stream as { iterator?: () => AsyncIterator<unknown> };
  if (typeof target.iterator !== "function") return false;
  const inner = target.iterator;
  target.iterator = function (this: unknown): AsyncIterator<unknown> {
    return meter(inner.call(this));
  };
  return true;
}

/**
 * An iterator that reads each chunk of `it` on its way through. A plain iterator object (not
 * an async generator); `return()` (a `break` in the caller's loop) and `throw()` reach the
 * inner iterator. Unless the spec may hide chunks, `next()` hands the caller the inner
 * iterator's own promise and reads its outcome beside it (a reaction registered before the
 * caller's, so it runs first); a spec that may hide one chains onto it instead.
 */
function metered(rt: Runtime, call: Call, spec: StreamSpec, it: AsyncIterator<unknown>): AsyncIterator<unknown> {
  let ended = false;
  const end = (error?: { error: unknown }): void => {
    if (ended) return;
    ended = true;
    guarded(rt, undefined, () => {
      call.end();
      if (error) call.failed(error.error);
      // the stream's usage is worked out on the sender's timer, off the caller's last next()
      const onEnd = spec.onEnd;
      rt.finish(call, onEnd ? () => onEnd.call(spec, call) : undefined);
    });
  };
  /** Read one result; false when the chunk is to be hidden from the caller. */
  const read = (result: IteratorResult<unknown>): boolean => {
    if (result.done) {
      end();
      return true;
    }
    call.firstToken();
    try {
      return spec.onChunk(call, result.value);
    } catch (err) {
      rt.swallowed(err);
      return true;
    }
  };
  const failedBeside = (error: unknown): void => end({ error });
  const failed = (error: unknown): never => {
    end({ error });
    throw error;
  };
  const step = (result: IteratorResult<unknown>): IteratorResult<unknown> | Promise<IteratorResult<unknown>> =>
    read(result) ? result : it.next().then(step, failed); // a chunk hidden from the caller: the next one
  const next = spec.mayHide
    ? (...value: [] | [unknown]) => it.next(...value).then(step, failed)
    : (...value: [] | [unknown]) => {
        const promise = it.next(...value);
        promise.then(read, failedBeside);
        return promise;
      };
  const iterator: AsyncIterator<unknown> & AsyncIterable<unknown> = {
    next,
    return: (value?: unknown) => {
      end();
      return it.return ? it.return(value) : Promise.resolve({ done: true, value });
    },
    throw: (error?: unknown) => {
      end({ error });
      return it.throw ? it.throw(error) : Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return iterator;
}
