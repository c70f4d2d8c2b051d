#!/usr/bin/env node
// Installed entry point: runs the TypeScript sources through tsx.
import { register } from "tsx/esm/api";
register();
await import("../src/agent/main.ts");
