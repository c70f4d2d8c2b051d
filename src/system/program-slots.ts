// At most N programs run at once. Every request path that runs a program
// (haproxy -v for GetInfo, haproxy -c for an upload, ip, nft...) would
// otherwise start one per request: a flood of cancelled requests (HTTP/2
// rapid reset) started thousands, ran the agent out of file descriptors,
// and execa then threw while node emitted an unhandled 'error' (the agent
// died). Waiting for a slot costs a caller time, never a crash.
import { readdirSync, readFileSync } from "node:fs";

export class ProgramSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on
      else this.running--;
    }
  }
}

/**
 * Whether the process has file descriptors left for a program's pipes.
 * execa cannot survive a spawn that fails for lack of them (it throws, and
 * node then emits an 'error' nobody listens to: the process dies), so a
 * run checks first and fails cleanly instead.
 */
export function fdsLeft(): number {
  try {
    const open = readdirSync("/proc/self/fd").length;
    limit ??= Number(/^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? Infinity);
    return limit - open;
  } catch (e) {
    // Not even one left to list them with.
    return (e as NodeJS.ErrnoException).code === "EMFILE" || (e as NodeJS.ErrnoException).code === "ENFILE" ? 0 : Infinity;
  }
}
let limit: number | undefined;

/** A program needs its pipes and a little room beside the other runs. */
export const FDS_PER_PROGRAM = 16;

/** Shared by every program the agent runs (src/system/exec.ts). */
export const programSlots = new ProgramSlots(64);
