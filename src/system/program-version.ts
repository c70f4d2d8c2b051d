// Versions of installed programs (haproxy, keepalived), asked once and then
// answered from memory for as long as the program's file is the same: a
// package upgrade replaces the file (new inode, new mtime) and the next
// question runs the program again (the file is looked at at most once a
// second). GET /1.0/info ran two programs per call.
import { stat } from "node:fs/promises";
import { findProgram } from "./find-program.js";

interface Known {
  /** The file the command resolved to on PATH. */
  path: string;
  /** inode, mtime and size of that file when the version was read. */
  identity: string;
  version: Promise<string>;
  /** When the file was last found unchanged (performance.now()). */
  checkedAt: number;
}

/** How long an answer stands before the file is looked at again. */
const RECHECK_MS = 1000;

export class ProgramVersions {
  private readonly known = new Map<string, Known>();

  /**
   * The version `probe` reads from `cmd` (a name on PATH or a path). Calls
   * while a probe runs share it; a probe that fails or answers "" is not kept.
   */
  async get(cmd: string, probe: (path: string) => Promise<string>): Promise<string> {
    let k = this.known.get(cmd);
    // Within a second of the last look the answer stands (a stat per call
    // was still 14 % of a GET /1.0/info).
    if (k && performance.now() - k.checkedAt < RECHECK_MS) return k.version;
    let identity = k ? await fileIdentity(k.path) : undefined;
    if (k && identity === k.identity) k.checkedAt = performance.now();
    else {
      // Not asked yet, replaced, or gone (then PATH may find it elsewhere).
      const path = (identity === undefined ? await findProgram(cmd) : k?.path) ?? cmd;
      identity ??= await fileIdentity(path);
      const version = probe(path);
      const entry: Known = { path, identity: identity ?? "", version, checkedAt: performance.now() };
      // Only a program that exists is remembered; a missing one is asked again.
      if (identity !== undefined) this.known.set(cmd, entry);
      // Nor is a failed probe or an empty answer (a timeout under load).
      const forget = () => {
        if (this.known.get(cmd) === entry) this.known.delete(cmd);
      };
      version.then((v) => v || forget(), forget);
      k = entry;
    }
    return k.version;
  }
}

async function fileIdentity(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.mtimeNs}:${s.size}`;
  } catch {
    return undefined;
  }
}
