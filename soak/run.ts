// `npm run soak [name...]`: runs every soak/*.ts scenario's exported main()
// (or those whose file name contains one of the arguments), one after the
// other. A scenario is bounded in time, prints its figures, and exits
// non-zero when what it checks did not hold.
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .filter((f) => !filters.length || filters.some((s) => f.includes(s)))
  .sort();
let failed = false;
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { main?: () => Promise<boolean | void> };
  if (typeof mod.main !== "function") continue;
  console.log(`\n=== soak/${f}`);
  if ((await mod.main()) === false) failed = true;
}
process.exit(failed ? 1 : 0);
