#!/usr/bin/env node
// Installed entry point of the operator CLI. Runs the compiled CLI from
// dist/ (built by `npm run build`, which `npm ci` runs as `prepare`); in a
// checkout without dist/ it falls back to the TypeScript sources through tsx,
// which costs a few hundred milliseconds per call.
import { existsSync } from "node:fs";

const compiled = new URL("../dist/cli/main.js", import.meta.url);
let cli;
if (existsSync(compiled)) {
  cli = await import(compiled.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import("../src/cli/main.ts");
}
cli.main();
