// The setup both contract test files share: the provider emulator, a fresh topic on the real
// broker, the SDK configured to send there, each scenario attributed to a session of its own,
// and the events read back from Kafka (decoded by the Python codec, an independent reader).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { close, configure, flush, stats, withContext } from "../dist/esm/index.js";
import { BOOTSTRAP, newTopic, readEvents, startEmulator, tempDir } from "./helpers.mjs";

export { NO_KAFKA } from "./helpers.mjs";

/** Every chunk of an async iterable. */
export async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

/**
 * One contract suite: `start()` in `before` (resolves to the emulator), `scenario()` for each
 * wrapped call, `finish(expected)` once they ran, `stop()` in `after`; then `only(name)` and
 * `eventsOf(name)` give a scenario's events and `runs.get(name)` what its caller saw.
 */
export function contractSuite(topicPrefix) {
  const runs = new Map(); // scenario name → { session, ...what the caller saw }
  let events = [];
  let emulator = null;
  let topic = null;

  const eventsOf = (name) => {
    const { session } = runs.get(name);
    return events.filter((e) => e.session_id === session).sort((a, b) => a.producer_seq - b.producer_seq);
  };

  return {
    runs,
    get events() {
      return events;
    },
    get emulator() {
      return emulator;
    },

    async start() {
      emulator = await startEmulator();
      topic = newTopic(topicPrefix);
      await configure({
        tenantId: "contract",
        project: "node-tests",
        bootstrapServers: BOOTSTRAP,
        topic,
        spoolDir: tempDir(),
        detectHost: false,
        serviceName: "node-contract",
      });
      return emulator;
    },

    /** Run `fn` as one scenario, attributed to a session of its own. */
    async scenario(name, fn) {
      const session = randomUUID();
      const seen = await withContext({ sessionId: session }, fn);
      runs.set(name, { session, ...seen });
    },

    /** Flush every event and read `expected` of them back from Kafka. */
    async finish(expected) {
      assert.equal(await flush(20_000), 0);
      events = readEvents(topic, expected);
    },

    async stop() {
      await close(5_000);
      emulator?.stop();
    },

    /** No SDK failure, and `expected` events sent and read back (none spooled or dropped). */
    sentAll(expected) {
      const s = stats();
      assert.equal(s.errors, 0);
      assert.equal(s.sent, expected);
      assert.equal(s.spooled + s.dropped + s.buildFailed, 0);
      assert.equal(events.length, expected);
    },

    eventsOf,

    /** The one event of scenario `name`. */
    only(name) {
      const found = eventsOf(name);
      assert.equal(found.length, 1, `${name}: expected one event, got ${found.length}`);
      return found[0];
    },
  };
}
