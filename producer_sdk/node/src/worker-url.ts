/**
 * Where this build's kafka-worker.js is. `import.meta.url` in the ES module build; the
 * CommonJS build's copy of this file is rewritten by scripts/cjs.mjs to use `__filename`.
 */
// @ts-ignore TS1343: import.meta in the CommonJS build is replaced by scripts/cjs.mjs
export const WORKER_URL: URL = new URL("./kafka-worker.js", import.meta.url);
