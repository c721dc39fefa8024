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

/** Replace `owner[name]` (an instance property shadowing the prototype's method). */
export function patch(
  owner: Record<string, unknown> | undefined,
  name: string,
  method: Method | Chooser,
  provider: Provider,
  attribution: Attribution,
): void {
  if (owner === undefined || owner === null) return;
  const original = owner[name] as Fn;
  if (typeof original !== "function" || (original as { __tokenline?: boolean }).__tokenline) return;
  const chooser = typeof method === "function" ? method : null;
  const fixed = typeof method === "function" ? null : method;
  // The settings' attribution under the wrap's, merged once per runtime (not once per call).
  let baseOf: Runtime | null = null;
  let base: Attribution = {};
  // The caller's path: no closure, no object but the Call (and a copy of the arguments when
  // `begin` changed the request); every SDK step inside a try whose failure is counted.
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    const rt = currentRuntime();
    if (rt === null) return original.apply(this, args);
    let chosen = fixed;
    if (chooser !== null) {
      try {
        chosen = chooser(args);
      } catch (err) {
        rt.swallowed(err);
        chosen = null;
      }
    }
    if (chosen === null) return original.apply(this, args);
    let call: Call | null = null;
    let body: Record<string, unknown> | null = null;
    let sent = args;
    try {
      if (baseOf !== rt) {
        base = Object.freeze({ ...rt.base, ...attribution, tags: { ...attribution.tags } });
        baseOf = rt;
      }
      call = new Call(provider, chosen.operation, merged(base));
      const given = args[0];
      body = given !== null && typeof given === "object" ? (given as Record<string, unknown>) : {};
      if (chosen.begin !== undefined) {
        const changed = chosen.begin(call, body);
        if (changed !== body) sent = [changed, ...args.slice(1)];
      }
    } catch (err) {
      rt.swallowed(err);
      call = null;
      sent = args;
    }
    const result = original.apply(this, sent);
    if (call !== null) {
      try {
        observe(rt, chosen, call, body as Record<string, unknown>, result);
      } catch (err) {
        rt.swallowed(err);
      }
    }
    return result;
  };
  Object.defineProperty(wrapped, "__tokenline", { value: true });
  Object.defineProperty(wrapped, "name", { value: original.name });
  owner[name] = wrapped;
}

/** The call succeeded with `value`: a stream is metered as it is read, a plain result queued. */
function succeeded(rt: Runtime, method: Method, call: Call, body: Record<string, unknown>, value: unknown): void {
  try {
    const streams = method.streams !== undefined ? method.streams(body) : body.stream === true;
    const spec = streams && method.stream !== undefined ? method.stream(call, body, value) : null;
    if (spec !== null) {
      call.streamed = true;
      meterStream(rt, call, spec, value);
    } else {
      call.end();
      // the result is read (`finish`) on the sender's timer, off the caller's path
      call.readWith(method.finish, method, value);
      rt.finish(call);
    }
  } catch (err) {
    rt.swallowed(err);
  }
}

function failedWith(rt: Runtime, call: Call, err: unknown): void {
  try {
    call.end();
    call.failed(err);
    rt.finish(call);
  } catch (error) {
    rt.swallowed(error);
  }
}

function observe(rt: Runtime, method: Method, call: Call, body: Record<string, unknown>, result: unknown): void {
  const promise = result as { parse?: () => Promise<unknown>; then?: unknown };
  if (promise !== null && typeof promise === "object" && typeof promise.parse === "function") {
    // The SDKs' APIPromise: parse() is what then/catch/finally/withResponse all go through.
    // Observed on its first parse() only. (Putting the original back on the promise at that
    // call, instead of this flag, measured seven full GCs instead of three in 60,000 calls.)
    const parse = promise.parse;
    let seen = false;
    promise.parse = function (this: unknown): Promise<unknown> {
      const parsed = parse.call(this);
      if (!seen) {
        seen = true;
        parsed.then(
          (value) => succeeded(rt, method, call, body, value),
          (err: unknown) => failedWith(rt, call, err),
        );
      }
      return parsed;
    };
  } else if (promise !== null && typeof promise === "object" && typeof promise.then === "function") {
    (promise as Promise<unknown>).then(
      (value) => succeeded(rt, method, call, body, value),
      (err: unknown) => failedWith(rt, call, err),
    );
  } else {
    succeeded(rt, method, call, body, result);
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
  return new Metered(rt, call, spec, it);
}

/**
 * The metering iterator: one object and two callbacks per stream (none per chunk). Its methods
 * are the prototype's, as an async generator's are.
 */
class Metered implements AsyncIterator<unknown>, AsyncIterable<unknown> {
  private ended = false;
  /** Reactions to the inner iterator's promises: reading beside them, or chaining onto them. */
  private readonly onResult: (result: IteratorResult<unknown>) => unknown;
  private readonly onError: (error: unknown) => void;

  constructor(
    private readonly rt: Runtime,
    private readonly call: Call,
    private readonly spec: StreamSpec,
    private readonly it: AsyncIterator<unknown>,
  ) {
    if (spec.mayHide === true) {
      // a chunk hidden from the caller: the next one
      this.onResult = (result) => (this.read(result) ? result : this.it.next().then(this.onResult, this.onError));
      this.onError = (error) => {
        this.end(error, true);
        throw error;
      };
    } else {
      this.onResult = (result) => this.read(result);
      this.onError = (error) => this.end(error, true);
    }
  }

  next(...value: [] | [unknown]): Promise<IteratorResult<unknown>> {
    const promise = value.length === 0 ? this.it.next() : this.it.next(value[0]);
    if (this.spec.mayHide === true) return promise.then(this.onResult, this.onError) as Promise<IteratorResult<unknown>>;
    promise.then(this.onResult, this.onError);
    return promise;
  }

  return(value?: unknown): Promise<IteratorResult<unknown>> {
    this.end(undefined, false);
    return this.it.return ? this.it.return(value) : Promise.resolve({ done: true, value });
  }

  throw(error?: unknown): Promise<IteratorResult<unknown>> {
    this.end(error, true);
    return this.it.throw ? this.it.throw(error) : Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Read one result; false when the chunk is to be hidden from the caller. */
  private read(result: IteratorResult<unknown>): boolean {
    if (result.done) {
      this.end(undefined, false);
      return true;
    }
    this.call.firstToken();
    try {
      return this.spec.onChunk(this.call, result.value);
    } catch (err) {
      this.rt.swallowed(err);
      return true;
    }
  }

  /** The stream ended (or failed, or the caller left it): queue its event, once. */
  private end(error: unknown, failed: boolean): void {
    if (this.ended) return;
    this.ended = true;
    const { call, spec } = this;
    try {
      call.end();
      if (failed) call.failed(error);
      // the stream's usage is worked out on the sender's timer, off the caller's last next()
      if (spec.onEnd !== undefined) call.readWith(spec.onEnd, spec, undefined);
      this.rt.finish(call);
    } catch (err) {
      this.rt.swallowed(err);
    }
  }
}
