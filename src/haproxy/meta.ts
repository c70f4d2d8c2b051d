// The per-load-balancer metadata file: config version, md5, the last
// config haproxy accepted, and what the running haproxy serves.
import { readFile, writeFile, rename, unlink } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { dirname, basename, join } from "node:path";
import { writeFileAtomic } from "../system/fs-atomic.js";

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

export interface LastApply {
  method: "runtime" | "reload" | "start";
  /** Why a reload, or what was applied at runtime. */
  reason: string;
  atMs: number;
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
  /**
   * What the controller last asked for: "running" after a successful start,
   * "stopped" after a stop. A wanted-running haproxy that is not running
   * (it died, the amphora rebooted) is started again by the agent; the
   * controller never re-sends start. Absent in metadata of older agents.
   */
  wanted?: "running" | "stopped";
  /** Automatic restarts after haproxy exited on its own (all time). */
  restarts?: number;
  /** When haproxy last exited without a stop request (Unix ms). */
  lastExitAtMs?: number;
  /** How the served config was last applied and why (issue 13); `atMs` tells one apply from the next. */
  lastApply?: LastApply;
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
 * or the new whole file) but without fsync. Only for the last-good copy:
 * it is derived and checked (a rollback checks its md5 first), never the
 * only copy of anything. fsync costs 1.5 ms on a quiet disk and 15-35 ms on
 * a busy one.
 */
export async function replaceFile(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    // A write that fails half-way (a full disk) leaves the temp file
    // created: removed with the rest.
    await writeFile(tmp, data, { mode, flag: "wx" });
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * With fsync: the metadata holds the highest version handed out and the
 * wanted state, which nothing else records. A rename without fsync can
 * leave an empty file after a power loss, and the version would then start
 * over.
 */
export async function writeMeta(file: string, m: LbMeta, o: { durable?: boolean; syncDir?: boolean } = {}): Promise<void> {
  m.updatedAt = new Date().toISOString();
  const text = JSON.stringify(m, null, 2) + "\n";
  // durable: false for writes that hand out no version and change no wanted
  // state (a successful reload: served version, last good, history), where
  // losing the write to a power cut costs only that history entry. They
  // are the hot path of every reload.
  // Never creates the load balancer's folder: a write that comes after a
  // delete (or after a test removed the state dir) fails instead.
  await (o.durable === false ? replaceFile(file, text, 0o600) : writeFileAtomic(file, text, 0o600, { syncDir: o.syncDir, createDir: false }));
}

/**
 * Metadata for a stored config whose meta.json is gone or unreadable (an
 * operator removed it, a damaged disk). The versions it held are lost, and
 * starting over at 1 would hand a controller's expected_version guard a
 * number it may already hold for another config. Every version is handed
 * out by an upload or a rollback, each of which takes far more than a
 * millisecond (haproxy -c alone takes ~45 ms), so no version ever reached
 * the current time in milliseconds: that is the floor. The last-good copy
 * is checked by md5 and kept for rollbacks (its version is unknown: 0).
 */
export async function recoverLostMeta(lbId: string, paths: { lastGood: string }, configMd5: string): Promise<LbMeta> {
  const version = Date.now();
  const good = await readFile(paths.lastGood, "utf8").then(md5, () => undefined);
  return {
    lbId, amphoraId: "", version, md5: configMd5,
    lastGood: good ? { version: good === configMd5 ? version : 0, md5: good } : undefined,
    lastAction: "metadata lost; recovered at agent start", updatedAt: "",
  };
}
