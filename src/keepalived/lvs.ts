// keepalived LVS configurations of UDP listeners (one file per listener,
// <stateDir>/lvs/<listener_id>.conf). They are validated with
// `keepalived -t` — which parses virtual_server blocks without needing IPVS —
// and stored. Running them needs IPVS in the kernel; this kernel has none
// (ipvsadm: "Protocol not available"), so `ensureRunnable` says so plainly
// instead of pretending a UDP listener runs.
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { DomainError, invalid, notFound } from "../errors.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { run } from "../system/exec.js";
import { safeJoin, writeFileAtomic } from "../system/fs-atomic.js";
import { checkKeepalivedConfig } from "./vrrp.js";
import { isUuid } from "../system/ids.js";

/**
 * A listener whose pool has no members yet renders a virtual_server without
 * real servers; keepalived warns (exit 5) but that config is legitimate.
 */
const LVS_BENIGN_WARNINGS = [/Virtual server \S+ has no real servers - ignoring/];


export class LvsListeners {
  readonly dir: string;
  private ipvs: Promise<{ ok: boolean; why: string }> | undefined;

  constructor(
    stateDir: string,
    readonly netns: string,
    private readonly logger: Logger = silentLogger,
  ) {
    this.dir = join(stateDir, "lvs");
  }

  private file(listenerId: string): string {
    if (!isUuid(listenerId)) throw invalid("Invalid request", `listener id must be a UUID: ${JSON.stringify(listenerId)}`);
    return safeJoin(this.dir, `${listenerId.toLowerCase()}.conf`);
  }

  /** Validates and stores; returns a note for the caller when the listener cannot run here. */
  async put(listenerId: string, text: string): Promise<{ runnable: boolean; note: string }> {
    const file = this.file(listenerId);
    const check = await checkKeepalivedConfig(text, this.dir, this.netns, this.logger, LVS_BENIGN_WARNINGS);
    if (!check.ok) throw invalid("Invalid request", check.output, "CONFIG_INVALID");
    await writeFileAtomic(file, text, 0o600);
    const ipvs = await this.ipvsAvailable();
    return ipvs.ok
      ? { runnable: true, note: check.warnings.length ? `keepalived warnings: ${check.warnings.join("; ")}` : "" }
      : { runnable: false, note: `configuration stored, but UDP listeners cannot run on this amphora: ${ipvs.why}${check.warnings.length ? `; keepalived warnings: ${check.warnings.join("; ")}` : ""}` };
  }

  async get(listenerId: string): Promise<string> {
    try {
      return await readFile(this.file(listenerId), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw notFound("UDP Listener Not Found", `No UDP listener with UUID: ${listenerId}`, "LISTENER_NOT_FOUND");
      }
      throw e;
    }
  }

  /** Removes a listener's configuration; removing an absent one is fine. */
  async delete(listenerId: string): Promise<void> {
    await rm(this.file(listenerId), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith(".conf") && isUuid(n.slice(0, -5))).map((n) => n.slice(0, -5));
  }

  /** Throws `precondition` when UDP listeners cannot run (no IPVS in the kernel). */
  async ensureRunnable(listenerId: string): Promise<void> {
    await this.get(listenerId);
    const ipvs = await this.ipvsAvailable();
    if (!ipvs.ok) {
      throw new DomainError("precondition", "UDP listeners cannot run on this amphora", ipvs.why, "IPVS_UNAVAILABLE");
    }
  }

  /** Asks the kernel once (ipvsadm talks to it over netlink) whether IPVS exists. */
  ipvsAvailable(): Promise<{ ok: boolean; why: string }> {
    this.ipvs ??= run("ipvsadm", ["-L", "-n"], { netns: this.netns, timeoutMs: 5000, logger: this.logger }).then(
      (r) => (r.exitCode === 0
        ? { ok: true, why: "" }
        : { ok: false, why: `the kernel has no IPVS (ipvsadm -L -n: ${(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`})` }),
    );
    return this.ipvs;
  }
}
