#!/usr/bin/env node
// Installed entry point of the operator CLI: runs the TypeScript sources through tsx.
import { register } from "tsx/esm/api";
register();
const { main } = await import("../src/cli/main.ts");
main();
