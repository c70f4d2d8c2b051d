// What the benchmarks that start the compiled agent share: the node flags
// the installed agent runs with, and a process's resident memory.
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The node flags on the agent bin's `#!/usr/bin/env -S node ...` line. */
export function binNodeFlags(root: string): string[] {
  const first = readFileSync(join(root, "bin", "amphora-agent.js"), "utf8").split("\n", 1)[0]!;
  return first.replace(/^#!.*?\bnode\b/, "").trim().split(/\s+/).filter(Boolean);
}

/** VmRSS of process `pid`, MB. */
export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}
