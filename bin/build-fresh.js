// Whether dist/ (the compiled agent, driver, CLI and generated code) is at
// least as new as every source it is built from, and a build that never
// leaves a half-written dist/ behind. Shared by the bins (run dist/ only
// when it is fresh), `npm start` and `npm test` (build when stale).
import { existsSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith(".ts") ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

/** The compiled entry point `rel` (e.g. "cli/main.js") under `root`. */
export const compiled = (root, rel) => join(root, "dist", rel);
/** The compiled CLI entry point under `root`. */
export const compiledCli = (root) => compiled(root, "cli/main.js");
/** The compiled agent entry point under `root`. */
export const compiledAgent = (root) => compiled(root, "agent/main.js");

// Written last by build(): its mtime is the build's time.
const STAMP = ".build-stamp";

/**
 * True when dist/ holds a complete build no source is newer than. The
 * published package ships dist/ without src/, so installed it is always
 * fresh.
 */
export function buildIsFresh(root) {
  const stamp = join(root, "dist", STAMP);
  if (!existsSync(stamp) || !existsSync(compiledCli(root)) || !existsSync(compiledAgent(root))) return false;
  const built = statSync(stamp).mtimeMs;
  const src = join(root, "src");
  const config = join(root, "tsconfig.build.json");
  return (!existsSync(src) || newestSource(src) <= built) && (!existsSync(config) || statSync(config).mtimeMs <= built);
}

/**
 * Builds dist/ from the sources with tsc (a dev dependency: only in a
 * checkout) when it is not fresh. The new build is made beside the old one
 * and swapped in, so a process reading dist/ meanwhile (a test run, a
 * started agent) never sees half a build. Returns false if tsc failed.
 */
export function buildIfStale(root, { force = false } = {}) {
  if (!force && buildIsFresh(root)) return true;
  const tmp = join(root, `dist.tmp-${process.pid}`);
  const started = new Date();
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", tmp], { stdio: "inherit" });
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    return false;
  }
  // The stamp carries the time the build started: a source saved while tsc
  // ran is newer, so the next check builds again.
  writeFileSync(join(tmp, STAMP), "");
  utimesSync(join(tmp, STAMP), started, started);
  const dist = join(root, "dist");
  const old = join(root, `dist.old-${process.pid}`);
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(tmp, dist);
  rmSync(old, { recursive: true, force: true });
  return true;
}
