// Runs every test/**/*.test.ts with node's test runner (Node 20 has no glob
// support in --test). Extra arguments select files by substring.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { buildIfStale } from "../bin/build-fresh.js";

function find(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? find(p) : p.endsWith(".test.ts") ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = find("test").filter((f) => !filters.length || filters.some((s) => f.includes(s))).sort();
if (!files.length) {
  console.error("no test files matched");
  process.exit(1);
}
// The compiled agent, driver and CLI (dist/, what the package exports and
// the bins run) are built from this tree first, once, so tests never see a
// stale build and no test rebuilds it while another one uses it (a build
// newer than every source is kept; a new one is swapped in whole).
if (!buildIfStale(process.cwd())) {
  console.error("npm run build failed: the tests need dist/");
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...files], { stdio: "inherit" });
// Port reservations (test/support/haproxy.ts) of test processes that were
// killed before they could remove their own: the owner is gone, so is the lock.
const locks = join(tmpdir(), "amphora-test-ports");
if (existsSync(locks)) {
  for (const f of readdirSync(locks)) {
    const owner = Number(readFileSync(join(locks, f), "utf8"));
    let alive = false;
    try {
      alive = owner > 0 && process.kill(owner, 0);
    } catch {
      // no such process
    }
    if (!alive) rmSync(join(locks, f), { force: true });
  }
  try {
    rmdirSync(locks);
  } catch {
    // another test run still holds ports
  }
}
process.exit(r.status ?? 1);
