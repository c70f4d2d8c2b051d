// `npm run soak [-- name...]`: runs every soak/*.ts scenario's exported
// main() (or those whose file name contains one of the arguments), one
// after the other. A scenario is bounded in time, prints figures over time,
// and throws (or answers false) when what it checks did not hold; the run
// exits non-zero if any scenario failed. SOAK_SCALE (default 1) stretches
// or shrinks every phase.
//
// The run re-executes itself in a network namespace of its own (loopback
// only), so whatever a scenario makes the agent do (plugs, haproxy binds,
// keepalived) stays off the host's interfaces, and whatever processes it
// starts can be found afterwards. --no-isolate runs in place.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (!args.includes("--no-isolate") && process.env.AMPHORA_SOAK_ISOLATED !== "1") {
  const r = spawnSync("unshare", ["--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    stdio: "inherit",
    env: { ...process.env, AMPHORA_SOAK_ISOLATED: "1", AMPHORA_FUZZ_ISOLATED: "1" },
  });
  if (r.error) throw r.error;
  process.exit(r.status ?? 1);
}
const filters = args.filter((a) => !a.startsWith("--"));
const files = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.endsWith(".d.ts"))
  .filter((f) => !filters.length || filters.some((s) => f.includes(s)))
  .sort();
let failed = 0;
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { main?: () => Promise<boolean | void> };
  if (typeof mod.main !== "function") continue;
  console.log(`\n=== soak/${f}`);
  try {
    // A scenario fails by throwing or by answering false.
    if ((await mod.main()) === false) {
      failed++;
      console.log(`FAILED soak/${f}`);
    }
  } catch (e) {
    failed++;
    console.log(`FAILED soak/${f}: ${(e as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
