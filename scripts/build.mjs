// `npm run build`: compiles src/ to dist/ (tsconfig.build.json), always,
// swapping the new build in whole (see bin/build-fresh.js).
import { fileURLToPath } from "node:url";
import { buildIfStale } from "../bin/build-fresh.js";

if (!buildIfStale(fileURLToPath(new URL("..", import.meta.url)), { force: true })) process.exit(1);
