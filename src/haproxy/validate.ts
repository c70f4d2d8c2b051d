// `haproxy -c` on a candidate config before anything on disk changes. The
// candidate lives in a scratch file; its name is replaced in haproxy's
// output by one the caller recognises.
import { unlink, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { run } from "../system/exec.js";
import { safeJoin } from "../system/fs-atomic.js";
import { DomainError, invalid, failed } from "../errors.js";
import type { Logger } from "../log.js";
import { describeOwnUpload } from "../system/validation-output.js";

/**
 * Most bytes of haproxy's output kept: one line of an 8 MiB config echoed
 * back is refused anyway, and collecting tens of MB blocked the event loop.
 */
const MAX_OUTPUT_BYTES = 1024 * 1024;

export interface ValidateOptions {
  haproxyCmd: string;
  scratchDir: string;
  userGroupFile: string;
  peer: string;
  /** How the config is called in error messages, e.g. "haproxy.cfg of load balancer X". */
  displayName: string;
  logger?: Logger;
  /** How long `haproxy -c` may take (default 30 s). */
  timeoutMs?: number;
  /** Folders whose files the caller uploaded (the load balancer's certificates): haproxy's lines about them may be returned. */
  ownDirs?: string[];
}

/** Throws `invalid` with haproxy's own output when the config is rejected. */
export async function validateConfig(config: string, o: ValidateOptions): Promise<{ warnings: string; durationMs: number }> {
  const candidate = safeJoin(o.scratchDir, `candidate-${randomBytes(8).toString("hex")}.cfg`);
  try {
    // A scratch file read once by `haproxy -c`: no fsync needed (a crash
    // leaves at most a stray candidate, removed at the next start). Inside
    // the try: a write that fails half-way (a full disk) leaves nothing.
    await writeFile(candidate, config, { mode: 0o600, flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
      throw failed("Could not check the configuration", `writing the candidate for haproxy -c failed: ${e.message}`, "STORE_FAILED");
    });
    // Never -q: it hides the ALERT lines.
    const timeoutMs = o.timeoutMs ?? 30_000;
    const r = await run(o.haproxyCmd, ["-c", "-f", candidate, "-f", o.userGroupFile, "-L", o.peer], { timeoutMs, logger: o.logger, maxOutputBytes: MAX_OUTPUT_BYTES });
    // Only what concerns the caller's own upload goes back (validation-output.ts).
    const out = describeOwnUpload(r.stderr + (r.stdout ? "\n" + r.stdout : ""), {
      own: [{ path: candidate, shownAs: o.displayName }, { path: o.userGroupFile, shownAs: "user-group.cfg" }, { path: o.haproxyCmd, shownAs: o.haproxyCmd }],
      ownDirs: o.ownDirs,
    });
    if (r.outputTruncated) {
      throw invalid("Invalid request", `${out}\n... haproxy -c said more than ${MAX_OUTPUT_BYTES} bytes about this configuration; the rest is not shown`, "CONFIG_INVALID");
    }
    if (r.stderr.includes("ENOENT") && !r.stderr.includes("[ALERT]")) {
      throw failed(`cannot run ${o.haproxyCmd}`, out, "HAPROXY_MISSING");
    }
    // Killed (our timeout on an overloaded machine, the OOM killer, ...):
    // the config was never judged. Saying "invalid" would make the
    // controller give up on a config that may be fine; 503 says "try again".
    if (r.timedOut || r.signal) {
      const how = r.timedOut ? `did not finish within ${timeoutMs} ms` : `was killed by ${r.signal}`;
      throw new DomainError("unavailable", `haproxy -c ${how}; the configuration was not checked, nothing was stored (retry later)`, out, "VALIDATION_UNAVAILABLE");
    }
    // The message Octavia controllers know; haproxy's own output is the detail.
    if (r.exitCode !== 0) throw invalid("Invalid request", out, "CONFIG_INVALID");
    return { warnings: out.split("\n").filter((l) => /\[WARNING\]/.test(l)).join("\n"), durationMs: r.durationMs };
  } finally {
    await unlink(candidate).catch(() => {});
  }
}
