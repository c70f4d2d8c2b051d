#!/usr/bin/env node
// Installed entry point of the operator CLI. Runs the compiled CLI from
// dist/ (built by `npm run build`, which `npm ci` runs as `prepare`). In a
// checkout where the sources changed after the last build (or there is no
// build) it runs the TypeScript sources through tsx instead, which costs a
// few hundred milliseconds per call but never runs stale code.
import { fileURLToPath } from "node:url";
import { buildIsFresh, compiledCli } from "./build-fresh.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const compiled = compiledCli(root);

let cli;
if (buildIsFresh(root)) {
  cli = await import(compiled);
} else if (process.env.AMPHORA_REQUIRE_DIST === "1") {
  // For packaging checks and tests: no silent fallback to the sources.
  console.error(`amphora: ${compiled} is missing or older than the sources (run npm run build)`);
  process.exit(2);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import("../src/cli/main.ts");
}
cli.main();
