// `haproxy -c` on a candidate config before anything on disk changes. The
// candidate lives in a scratch file; its name is replaced in haproxy's
// output by one the caller recognises.
import { unlink, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { run } from "../system/exec.js";
import { safeJoin } from "../system/fs-atomic.js";
import { invalid, failed } from "../errors.js";
import type { Logger } from "../log.js";

export interface ValidateOptions {
  haproxyCmd: string;
  scratchDir: string;
  userGroupFile: string;
  peer: string;
  /** How the config is called in error messages, e.g. "haproxy.cfg of load balancer X". */
  displayName: string;
  logger?: Logger;
}

function replaceAll(text: string, from: string, to: string): string {
  return from ? text.split(from).join(to) : text;
}

/** Throws `invalid` with haproxy's own output when the config is rejected. */
export async function validateConfig(config: string, o: ValidateOptions): Promise<{ warnings: string; durationMs: number }> {
  const candidate = safeJoin(o.scratchDir, `candidate-${randomBytes(8).toString("hex")}.cfg`);
  // A scratch file read once by `haproxy -c`: no fsync needed (a crash
  // leaves at most a stray candidate, removed at the next start).
  await writeFile(candidate, config, { mode: 0o600, flag: "wx" });
  try {
    // Never -q: it hides the ALERT lines.
    const r = await run(o.haproxyCmd, ["-c", "-f", candidate, "-f", o.userGroupFile, "-L", o.peer], { timeoutMs: 30_000, logger: o.logger });
    let out = (r.stderr + (r.stdout ? "\n" + r.stdout : "")).trim();
    out = replaceAll(out, candidate, o.displayName);
    out = replaceAll(out, o.userGroupFile, "user-group.cfg");
    if (/ENOENT/.test(r.stderr) && !/\[ALERT\]/.test(r.stderr)) {
      throw failed(`cannot run ${o.haproxyCmd}`, out, "HAPROXY_MISSING");
    }
    // The message Octavia controllers know; haproxy's own output is the detail.
    if (r.exitCode !== 0) throw invalid("Invalid request", out, "CONFIG_INVALID");
    return { warnings: out.split("\n").filter((l) => /\[WARNING\]/.test(l)).join("\n"), durationMs: r.durationMs };
  } finally {
    await unlink(candidate).catch(() => {});
  }
}
