// keepalived LVS configurations of UDP listeners (one file per listener,
// <stateDir>/lvs/<listener_id>.conf). They are validated with
// `keepalived -t` — which parses virtual_server blocks without needing IPVS —
// and stored. Running them needs IPVS in the kernel; this kernel has none
// (ipvsadm: "Protocol not available"), so `ensureRunnable` and `control`
// say so plainly instead of pretending a UDP listener runs.
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { findProgram } from "../system/find-program.js";
import { DomainError, invalid, notFound } from "../errors.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { run } from "../system/exec.js";
import { safeJoin, writeFileAtomic } from "../system/fs-atomic.js";
import { checkKeepalivedConfig } from "./vrrp.js";
import { checkKeepalivedPolicy, type KeepalivedPolicy } from "./config-policy.js";
import { isUuid } from "../system/ids.js";

/**
 * A listener whose pool has no members yet renders a virtual_server without
 * real servers; keepalived warns (exit 5) but that config is legitimate.
 */
const LVS_BENIGN_WARNINGS = [/Virtual server \S+ has no real servers - ignoring/];


export interface IpvsCheck {
  ok: boolean;
  why: string;
  /** IPVS_UNAVAILABLE (the kernel has none) or IPVSADM_MISSING (cannot ask it). */
  reason: "" | "IPVS_UNAVAILABLE" | "IPVSADM_MISSING";
}

export { findProgram };

export class LvsListeners {
  readonly dir: string;
  private ipvs: Promise<IpvsCheck> | undefined;
  /**
   * Ids of the stored configurations: read from the folder once, then kept
   * up to date by put and delete (GET /1.0/listeners lists them per call).
   */
  private stored: Promise<Set<string>> | undefined;

  constructor(
    stateDir: string,
    readonly netns: string,
    private readonly logger: Logger = silentLogger,
    /** ipvsadm, the tool that asks the kernel about IPVS (only a Recommends of Debian's keepalived). */
    private readonly ipvsadm = "ipvsadm",
    /** How long `ipvsadm -L -n` may take; a timeout is not cached. */
    private readonly probeTimeoutMs = 5000,
    /** The config policy uploads must pass (config-policy.ts); without it only `include` is refused. */
    private readonly policy?: () => KeepalivedPolicy,
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
    checkKeepalivedPolicy(text, this.policy?.() ?? { enabled: false, stateDir: "", extraPaths: [] });
    const check = await checkKeepalivedConfig(text, this.dir, this.netns, this.logger, LVS_BENIGN_WARNINGS);
    if (!check.ok) throw invalid("Invalid request", check.output, "CONFIG_INVALID");
    await writeFileAtomic(file, text, 0o600);
    (await this.ids()).add(listenerId.toLowerCase());
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
    const file = this.file(listenerId);
    const ids = await this.ids();
    await rm(file, { force: true });
    ids.delete(listenerId.toLowerCase());
  }

  private ids(): Promise<Set<string>> {
    this.stored ??= readdir(this.dir).catch(() => [] as string[]).then((names) =>
      new Set(names.filter((n) => n.endsWith(".conf") && isUuid(n.slice(0, -5))).map((n) => n.slice(0, -5))));
    return this.stored;
  }

  async list(): Promise<string[]> {
    return [...(await this.ids())];
  }

  /** Whether a UDP listener configuration is stored under this id (false for a non-UUID). */
  async has(listenerId: string): Promise<boolean> {
    if (!isUuid(listenerId)) return false;
    return (await this.ids()).has(listenerId.toLowerCase());
  }

  /** Throws `precondition` when UDP listeners cannot run (no IPVS in the kernel, or no ipvsadm to ask it). */
  async ensureRunnable(listenerId: string): Promise<void> {
    await this.get(listenerId);
    const ipvs = await this.ipvsAvailable();
    if (!ipvs.ok) {
      throw new DomainError("precondition", "UDP listeners cannot run on this amphora", ipvs.why, ipvs.reason);
    }
  }

  /**
   * PUT /1.0/loadbalancer/{listener_id}/{action} for a UDP listener. Start
   * and reload need IPVS: without it the answer is a precondition error
   * (409, reason IPVS_UNAVAILABLE or IPVSADM_MISSING) naming why. Stopping
   * succeeds: nothing of it runs. With IPVS, running the listener's
   * keepalived is not implemented by this agent (unimplemented, not a
   * pretended success).
   */
  async control(listenerId: string, action: "start" | "stop" | "reload"): Promise<{ message: string; details: string }> {
    await this.get(listenerId);
    const ipvs = await this.ipvsAvailable();
    if (action === "stop") {
      return { message: "OK", details: `UDP listener ${listenerId} is not running${ipvs.ok ? "" : ` (UDP listeners cannot run on this amphora: ${ipvs.why})`}` };
    }
    await this.ensureRunnable(listenerId);
    throw new DomainError("unimplemented", "Running UDP listeners is not implemented by this agent", `cannot ${action} UDP listener ${listenerId}: this agent stores and validates keepalived LVS configurations but does not run them`, "LVS_NOT_IMPLEMENTED");
  }

  /**
   * Asks the kernel (ipvsadm talks to it over netlink) whether IPVS exists.
   * Only a definite answer is kept for the agent's lifetime: IPVS present, or
   * a kernel that has none ("Protocol not available"). A missing ipvsadm (it
   * may be installed later), a timeout under load or any other failure is
   * answered as it is and asked again on the next call. Calls while a probe
   * runs share it.
   */
  ipvsAvailable(): Promise<IpvsCheck> {
    if (!this.ipvs) {
      const p: Promise<IpvsCheck> = this.probe().then(
        ({ check, definite }) => {
          if (!definite && this.ipvs === p) this.ipvs = undefined;
          return check;
        },
        (e: unknown) => {
          if (this.ipvs === p) this.ipvs = undefined;
          throw e;
        },
      );
      this.ipvs = p;
    }
    return this.ipvs;
  }

  private async probe(): Promise<{ check: IpvsCheck; definite: boolean }> {
    // Found first: through `ip netns exec` a missing program is only exit 255 and a message.
    const cmd = await findProgram(this.ipvsadm);
    if (!cmd) {
      return {
        check: { ok: false, why: `${this.ipvsadm} is not installed, so the agent cannot check or use IPVS (Debian package ipvsadm)`, reason: "IPVSADM_MISSING" },
        definite: false,
      };
    }
    const r = await run(cmd, ["-L", "-n"], { netns: this.netns, timeoutMs: this.probeTimeoutMs, logger: this.logger });
    if (r.exitCode === 0) return { check: { ok: true, why: "", reason: "" }, definite: true };
    const said = (r.stderr || r.stdout).trim() || `exit ${r.exitCode}`;
    // ipvsadm: "Can't initialize ipvs: Protocol not available / Are you sure that IP Virtual Server is built in the kernel or as module?"
    if (!r.timedOut && /Protocol not available|IP Virtual Server is built in the kernel/i.test(said)) {
      return { check: { ok: false, why: `the kernel has no IPVS (ipvsadm -L -n: ${said})`, reason: "IPVS_UNAVAILABLE" }, definite: true };
    }
    return { check: { ok: false, why: `could not ask the kernel about IPVS (ipvsadm -L -n: ${said}); asked again next time`, reason: "IPVS_UNAVAILABLE" }, definite: false };
  }
}
