// The per-load-balancer metadata file: config version, md5, the last
// config haproxy accepted, and what the running haproxy serves.
import { readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { writeFileAtomic } from "../system/fs-atomic.js";

export interface VersionRef {
  version: number;
  md5: string;
}

export interface LbMeta extends VersionRef {
  lbId: string;
  /** The amphora id of the upload; haproxy's -L peer name derives from it. */
  amphoraId: string;
  /** The config haproxy last started or reloaded with successfully (copy in haproxy.cfg.last-good). */
  lastGood?: VersionRef;
  /** What the running haproxy was started/reloaded with. */
  served?: VersionRef;
  lastAction?: string;
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

export async function writeMeta(file: string, m: LbMeta): Promise<void> {
  m.updatedAt = new Date().toISOString();
  await writeFileAtomic(file, JSON.stringify(m, null, 2) + "\n", 0o600);
}
