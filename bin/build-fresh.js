// Whether dist/ (the compiled driver and CLI) is at least as new as every
// source it is built from. Shared by the `amphora` bin (run dist/ or fall
// back to the sources) and `npm test` (rebuild only when needed).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith(".ts") ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

/** The compiled CLI entry point under `root`. */
export const compiledCli = (root) => join(root, "dist", "cli", "main.js");

export function buildIsFresh(root) {
  const compiled = compiledCli(root);
  if (!existsSync(compiled)) return false;
  const built = statSync(compiled).mtimeMs;
  // An installed package may ship dist/ without some of the sources.
  const sources = ["src/cli", "src/driver", "src/gen"].map((d) => join(root, d)).filter((d) => existsSync(d));
  const config = join(root, "tsconfig.build.json");
  return sources.every((d) => newestSource(d) <= built) && (!existsSync(config) || statSync(config).mtimeMs <= built);
}
