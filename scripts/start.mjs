// `npm start -- ARGS`: builds dist/ if any source is newer than it, then
// runs the compiled agent with plain node in this process (signals reach
// it directly). Never runs a stale build.
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildIfStale, compiledAgent } from "../bin/build-fresh.js";

const root = fileURLToPath(new URL("..", import.meta.url));
if (!buildIfStale(root)) {
  console.error("npm start: npm run build failed");
  process.exit(1);
}
await import(pathToFileURL(compiledAgent(root)).href);
