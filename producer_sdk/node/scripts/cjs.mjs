// Marks dist/cjs as CommonJS (the package itself is "type": "module"), and gives the CommonJS
// build's worker-url.js the file's own location (`import.meta` does not exist there).
import { readFileSync, writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{"type":"commonjs"}\n');
const workerUrl = new URL("../dist/cjs/worker-url.js", import.meta.url);
const source = readFileSync(workerUrl, "utf8");
const esm = '"./kafka-worker.js", import.meta.url)';
if (!source.includes(esm)) throw new Error(`dist/cjs/worker-url.js: ${esm} not found`);
writeFileSync(workerUrl, source.replace(esm, '"./kafka-worker.js", require("node:url").pathToFileURL(__filename))'));
