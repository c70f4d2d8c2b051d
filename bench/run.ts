// `npm run bench [name...]`: runs every bench/*.ts module's exported main()
// (or those whose file name contains one of the arguments), one after the
// other so they do not disturb each other's figures. Benchmarks are not
// tests: they print figures and targets, and fail only if they cannot run.
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .filter((f) => !filters.length || filters.some((s) => f.includes(s)))
  .sort();
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { main?: () => Promise<void> };
  if (typeof mod.main !== "function") continue;
  console.log(`\n=== bench/${f}`);
  await mod.main();
}
