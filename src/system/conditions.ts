// Conditions the agent runs with but could not fix itself, e.g. a write at
// start that failed on a full disk. The agent keeps serving (a controller
// that cannot reach it cannot fix the disk either) and reports each one: a
// log line when it appears, GetDetails' `warnings`, and the
// amphora_agent_conditions metric. Knows nothing of RPC.
import type { Logger } from "../log.js";
import { writeFileIfChanged } from "./fs-atomic.js";

export interface Condition {
  /** Stable key, e.g. "start_write:haproxy-user-group.cfg". */
  key: string;
  /** Kind for the metric label, e.g. "start_write_failed". */
  kind: string;
  message: string;
  since: Date;
}

export class Conditions {
  private readonly byKey = new Map<string, Condition>();

  constructor(private readonly logger?: Logger) {}

  report(kind: string, key: string, message: string): void {
    const had = this.byKey.get(key);
    if (had?.message === message) return;
    this.byKey.set(key, { key, kind, message, since: had?.since ?? new Date() });
    this.logger?.warn({ condition: kind, key }, message);
  }

  clear(key: string): void {
    if (this.byKey.delete(key)) this.logger?.info({ key }, "condition cleared");
  }

  list(): Condition[] {
    return [...this.byKey.values()];
  }

  /** How many conditions of each kind hold now. */
  countsByKind(): Map<string, number> {
    const m = new Map<string, number>();
    for (const c of this.byKey.values()) m.set(c.kind, (m.get(c.kind) ?? 0) + 1);
    return m;
  }
}

/** Errors of the storage, not of the agent: a start goes on without the write. */
const STORAGE_ERRORS = new Set(["ENOSPC", "EDQUOT", "EROFS", "EIO"]);

export function isStorageError(e: unknown): boolean {
  return STORAGE_ERRORS.has((e as NodeJS.ErrnoException)?.code ?? "");
}

/**
 * A write a start makes (a file the agent derives, not state a caller sent):
 * skipped when the file already holds `data`, so a start on a full disk
 * needs no space for unchanged files; when the write is needed and the
 * storage refuses it, reported in `conditions` instead of failing the start.
 * Returns whether the file now holds `data`.
 */
export async function writeAtStart(path: string, data: string, mode: number, conditions: Conditions | undefined, what: string): Promise<boolean> {
  const key = `start_write:${path}`;
  try {
    await writeFileIfChanged(path, data, mode);
    conditions?.clear(key);
    return true;
  } catch (e) {
    if (!conditions || !isStorageError(e)) throw e;
    conditions.report("start_write_failed", key, `could not write ${what} (${path}) at start: ${(e as Error).message}; the agent serves without it until the write succeeds`);
    return false;
  }
}
