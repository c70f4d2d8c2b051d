#!/usr/bin/env -S node --max-semi-space-size=2 --v8-pool-size=1
// (The first flag keeps V8's young generation at 2 MB per semi-space
// instead of growing to 16: about 12 MB less resident memory for an agent
// that is idle most of its life. The second gives V8 one worker thread
// instead of four, enough on an amphora's 1-2 cores: ~1.5 MB less, no
// measurable change in throughput. `npm start` passes both too.)
// Installed entry point of the agent: runs the compiled agent from dist/
// with plain node (built by `npm run build`, which `npm ci` runs as
// `prepare`; the published package ships it). In a checkout whose sources
// changed after the last build it refuses to run the stale build: it says
// so and runs the sources through tsx (a dev dependency), or fails when
// AMPHORA_REQUIRE_DIST=1 or tsx is not installed. `npm start` builds first.
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildIsFresh, compiledAgent } from "./build-fresh.js";

const root = fileURLToPath(new URL("..", import.meta.url));
if (buildIsFresh(root)) {
  await import(pathToFileURL(compiledAgent(root)).href);
} else {
  const why = `${compiledAgent(root)} is missing or older than the sources (run npm run build)`;
  if (process.env.AMPHORA_REQUIRE_DIST === "1") {
    console.error(`amphora-agent: ${why}`);
    process.exit(2);
  }
  let register;
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    console.error(`amphora-agent: ${why}; tsx, which could run the sources, is not installed`);
    process.exit(2);
  }
  console.error(`amphora-agent: ${why}; running the sources through tsx`);
  register();
  await import("../src/agent/main.ts");
}
