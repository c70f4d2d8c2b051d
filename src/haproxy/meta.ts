// The per-load-balancer metadata file: config version, md5, the last
// config haproxy accepted, and what the running haproxy serves.
import { readFile, writeFile, rename, unlink } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { dirname, basename, join } from "node:path";

export interface VersionRef {
  version: number;
  md5: string;
}

export interface ActionRecord {
  action: "UPLOAD" | "START" | "STOP" | "RELOAD" | "EXITED";
  ok: boolean;
  configVersion: number;
  details: string;
  finishedAtMs: number;
  durationMs: number;
}

/** How many action records a load balancer keeps. */
export const HISTORY_LENGTH = 20;

export interface LbMeta extends VersionRef {
  lbId: string;
  /** The amphora id of the upload; haproxy's -L peer name derives from it. */
  amphoraId: string;
  /** The config haproxy last started or reloaded with successfully (copy in haproxy.cfg.last-good). */
  lastGood?: VersionRef;
  /** What the running haproxy was started/reloaded with. */
  served?: VersionRef;
  lastAction?: string;
  /** Most recent first. */
  history?: ActionRecord[];
  updatedAt: string;
}

export const md5 = (text: string | Buffer) => createHash("md5").update(text).digest("hex");

export async function readMeta(file: string): Promise<LbMeta | undefined> {
  try {
    const m = JSON.parse(await readFile(file, "utf8")) as LbMeta;
    if (typeof m.version !== "number" || typeof m.md5 !== "string") return undefined;
    return m;
  } catch {
    return undefined;
  }
}

/**
 * Replaces a file by rename (a reader or a crash of the agent sees the old
 * or the new whole file) but without fsync. Used for files that are derived
 * and checked, never the only copy of anything: the metadata (repaired from
 * haproxy.cfg, which is written with fsync, when its md5 does not match)
 * and the last-good copy (a rollback checks its md5 first). fsync costs
 * 1.5 ms on a quiet disk and 15-35 ms on a busy one, on every upload and
 * reload.
 */
export async function replaceFile(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  await writeFile(tmp, data, { mode, flag: "wx" });
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

export async function writeMeta(file: string, m: LbMeta): Promise<void> {
  m.updatedAt = new Date().toISOString();
  await replaceFile(file, JSON.stringify(m, null, 2) + "\n");
}
