#!/usr/bin/env node
// Installed entry point of the operator CLI. Runs the compiled CLI from
// dist/ (built by `npm run build`, which `npm ci` runs as `prepare`). In a
// checkout where the sources changed after the last build (or there is no
// build) it runs the TypeScript sources through tsx instead, which costs a
// few hundred milliseconds per call but never runs stale code.
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("..", import.meta.url));
const compiled = join(root, "dist", "cli", "main.js");

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith(".ts") ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

function buildIsFresh() {
  if (!existsSync(compiled)) return false;
  // An installed package may ship dist/ without sources of every part.
  const parts = ["cli", "driver", "gen"].map((d) => join(root, "src", d)).filter((d) => existsSync(d));
  const built = statSync(compiled).mtimeMs;
  return parts.every((d) => newestSource(d) <= built);
}

let cli;
if (buildIsFresh()) {
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
