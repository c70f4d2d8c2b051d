// The stored configuration of one load balancer: versions, metadata, the
// last good copy, rollback, and recovery after a crash. Files only: no
// haproxy, no processes, no locks (the manager calls it under the load
// balancer's lock), so it is tested without haproxy
// (test/haproxy/config-store.test.ts).
import { access, mkdir, readdir, readFile, rm, unlink } from "node:fs/promises";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { failed } from "../errors.js";
import type { Logger } from "../log.js";
import type { LbPaths } from "./layout.js";
import { HISTORY_LENGTH, md5, readMeta, recoverLostMeta, replaceFile, writeMeta, type ActionRecord, type LbMeta } from "./meta.js";

export { md5 };

/** Records the outcome of an action in the metadata (the caller writes it). */
export function noteAction(meta: LbMeta, action: ActionRecord["action"], ok: boolean, details: string, startedAt: number): void {
  meta.lastAction = details;
  const rec: ActionRecord = {
    action, ok, details, configVersion: meta.version,
    finishedAtMs: Date.now(), durationMs: Math.round(performance.now() - startedAt),
  };
  meta.history = [rec, ...(meta.history ?? [])].slice(0, HISTORY_LENGTH);
}

/** Writes the metadata (fsynced unless `durable: false`; never creates the folder). */
export function saveMeta(paths: LbPaths, meta: LbMeta, o: { durable?: boolean; syncDir?: boolean } = {}): Promise<void> {
  return writeMeta(paths.meta, meta, o);
}

export function readConfig(paths: LbPaths): Promise<string> {
  return readFile(paths.config, "utf8");
}

/** True when `path` exists (any kind of file, also an empty one). */
async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/**
 * At agent start: the stored config and its metadata, repaired after a
 * crash, or undefined when the folder holds no complete config. Removes
 * temp files of atomic writes a crash interrupted.
 *
 * `haproxy.cfg` is the truth: metadata whose md5 does not match it (a crash
 * between the two writes of an upload) gives it the version after the one
 * recorded, so versions never go backwards; lost or unreadable metadata
 * gets a version above any handed out (recoverLostMeta) and `wanted:
 * running` when the pid file is still there (stop and delete remove it, a
 * crash or reboot does not).
 */
export async function recoverStored(lbId: string, paths: LbPaths, logger: Logger): Promise<{ meta: LbMeta; text: string } | undefined> {
  for (const f of await readdir(paths.dir)) if (/^\..*\.tmp$/.test(f)) await rm(`${paths.dir}/${f}`, { force: true });
  let text: string;
  try {
    text = await readFile(paths.config, "utf8");
  } catch {
    logger.warn({ lbId }, "load balancer folder without haproxy.cfg ignored");
    return undefined;
  }
  let meta = await readMeta(paths.meta);
  const sum = md5(text);
  if (!meta) {
    meta = await recoverLostMeta(lbId, paths, sum);
    // The wanted state went with it (a power cut after a reload's unsynced
    // metadata write can leave meta.json empty). A pid file still there
    // says haproxy ran. Without this, a load balancer the keepalived check
    // requires would never come back.
    if (await exists(paths.pidFile)) meta.wanted = "running";
    logger.warn({ lbId, version: meta.version, wanted: meta.wanted ?? "stopped" }, "meta.json missing or unreadable; the stored config gets a version above any handed out");
    await writeMeta(paths.meta, meta);
  } else if (meta.md5 !== sum) {
    meta = { ...meta, version: meta.version + 1, md5: sum, lastAction: "metadata recovered at agent start" };
    await writeMeta(paths.meta, meta);
  }
  return { meta, text };
}

/**
 * Stores a validated config as the next version. Metadata first, then the
 * config, one after the other (both fsynced):
 * - the metadata write fails: nothing changed anywhere;
 * - the config write fails: the previous metadata is put back (or removed
 *   for a new load balancer, with the folder this call made);
 * - a crash between the two: the md5 no longer matches, and recoverStored
 *   gives the complete haproxy.cfg a version above the recorded one.
 * (The metadata's folder sync is left to the config write right after.)
 * Returns the new metadata; the caller's copy of the old one is untouched.
 */
export async function storeConfig(
  paths: LbPaths, previous: LbMeta | undefined, lbId: string, amphoraId: string, text: string, startedAt: number, logger: Logger,
): Promise<LbMeta> {
  const sum = md5(text);
  const madeDir = previous === undefined && !(await exists(paths.dir));
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const meta: LbMeta = previous
    ? { ...previous, amphoraId, version: previous.version + 1, md5: sum }
    : { lbId, amphoraId, version: 1, md5: sum, updatedAt: "" };
  noteAction(meta, "UPLOAD", true, `config version ${meta.version} stored (md5 ${sum})`, startedAt);
  // A new load balancer whose first write fails leaves no folder behind.
  const undoDir = () => (madeDir ? rm(paths.dir, { recursive: true, force: true }) : Promise.resolve());
  try {
    await writeMeta(paths.meta, meta, { syncDir: false });
  } catch (e) {
    await undoDir().catch(() => {});
    throw failed("Could not store the configuration", `metadata not written: ${(e as Error).message}`, "STORE_FAILED");
  }
  try {
    await writeFileAtomic(paths.config, text, 0o600, { createDir: false });
  } catch (e) {
    const undo = previous ? writeMeta(paths.meta, previous) : unlink(paths.meta).then(undoDir);
    await undo.catch((u: Error) => logger.error({ lbId, err: u.message }, "could not restore the metadata after a failed upload"));
    throw failed("Could not store the configuration", (e as Error).message, "STORE_FAILED");
  }
  return meta;
}

/**
 * Records the stored config as the one haproxy runs (and may roll back
 * to): the metadata synchronously (so a concurrent metadata write records
 * it), then the last-good copy when it changed (replaced whole; a rollback
 * checks its md5 too).
 */
export async function markGood(paths: LbPaths, meta: LbMeta, text?: string): Promise<void> {
  const changed = meta.lastGood?.md5 !== meta.md5;
  meta.lastGood = { version: meta.version, md5: meta.md5 };
  meta.served = { version: meta.version, md5: meta.md5 };
  if (changed) await replaceFile(paths.lastGood, text ?? (await readFile(paths.config, "utf8")));
}

export type Rollback =
  /** The stored config already is the last good one (or none is known). */
  | { kind: "none" }
  /** The last-good copy is missing or does not match its md5: nothing changed. */
  | { kind: "missing" }
  /** Stored again as a new version; `text` is what haproxy.cfg holds now. */
  | { kind: "done"; text: string; from: number; note: string };

/**
 * After a failed reload: stores the last config haproxy accepted as the
 * next version, so the next reload (or a restart) does not pick up the bad
 * one. Changes `meta` (the caller writes it).
 */
export async function rollBack(paths: LbPaths, meta: LbMeta): Promise<Rollback> {
  if (!meta.lastGood || meta.lastGood.md5 === meta.md5) return { kind: "none" };
  const good = await readFile(paths.lastGood, "utf8").catch(() => "");
  if (md5(good) !== meta.lastGood.md5) return { kind: "missing" };
  await writeFileAtomic(paths.config, good, 0o600, { createDir: false });
  const from = meta.version;
  meta.version += 1;
  meta.md5 = md5(good);
  const note = `stored config rolled back from version ${from} to the last good one (version ${meta.lastGood.version || "unknown"}, now stored as version ${meta.version})`;
  return { kind: "done", text: good, from, note };
}
