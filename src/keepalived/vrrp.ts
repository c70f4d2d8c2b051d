// keepalived for VRRP (active/standby pairs): the uploaded configuration is
// validated with `keepalived -t` inside the load-balancer namespace (so the
// interfaces it names are checked against the real ones) before it replaces
// the stored one; the daemon runs daemonized in that namespace with its own
// pid files, so it outlives an agent restart and is found again from them.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DomainError, failed, invalid } from "../errors.js";
import { KeyedLock } from "../system/keyed-lock.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { run } from "../system/exec.js";
import { writeFileAtomic, writeFileIfChanged } from "../system/fs-atomic.js";
import { isRunning, livePid, waitFor } from "./pid.js";
import { isIP } from "node:net";
import { listAddresses, normalizeIp } from "../network/interfaces.js";
import { HaproxyCheckScripts } from "./check-script.js";
import { notifyFifoPath, renderRunConfig } from "./vrrp-notify.js";
import { scanConf } from "./conf-scan.js";
import { describeOwnUpload } from "../system/validation-output.js";
import { checkKeepalivedPolicy, type KeepalivedPolicy } from "./config-policy.js";

export interface KeepalivedStatus {
  running: boolean;
  pid?: number;
  vrrpPid?: number;
  configured: boolean;
}

const COMM = "keepalived";

/** Most bytes of `keepalived -t` output kept (it repeats a complaint for every line of the upload). */
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * `keepalived -t` exits 5 for warnings and errors alike (6 when the only
 * complaint is about script security). These warnings do not stop
 * keepalived from doing its job and occur in configurations Octavia renders,
 * so they are reported back but do not refuse the upload. Anything else does.
 * - a check script the agent does not write (outside <stateDir>/vrrp/) may
 *   not exist on this amphora;
 * - Octavia's template runs its check script without `enable_script_security`
 *   (keepalived then runs it as root, which the agent's own script is fine with).
 */
export const VRRP_BENIGN_WARNINGS = [
  /Disabling track script \S+ since not found\/accessible/,
  /nopreempt will not work with initial state MASTER/,
  /SECURITY VIOLATION - scripts are being executed but script_security not enabled/,
];

export interface ConfigCheck {
  ok: boolean;
  /** What keepalived said (errors when !ok). */
  output: string;
  /** Accepted warnings, when ok. */
  warnings: string[];
}

/** Validates a keepalived configuration with `keepalived -t` in `netns`. */
export async function checkKeepalivedConfig(
  text: string, dir: string, netns: string, logger?: Logger, benign: RegExp[] = VRRP_BENIGN_WARNINGS,
): Promise<ConfigCheck> {
  // Otherwise `ip netns exec` fails and its complaint would read as a fault of the configuration.
  if (netns && !existsSync(`/run/netns/${netns}`)) {
    throw new DomainError("precondition", "The load-balancer network namespace does not exist", `network namespace ${netns} does not exist yet; it is created when the VIP is plugged`, "NETNS_MISSING");
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.check-${randomBytes(6).toString("hex")}.conf`);
  await writeFile(tmp, text, { mode: 0o600 });
  try {
    const r = await run("keepalived", ["-t", "-f", tmp], { netns, timeoutMs: 15_000, logger, maxOutputBytes: MAX_OUTPUT_BYTES });
    // Only lines about the caller's own upload, under the name the caller
    // knows, each once (keepalived parses once per process and repeats each
    // complaint), bounded (it complains about every line of a hostile upload).
    const said = describeOwnUpload([r.stderr, r.stdout].filter(Boolean).join("\n"), { own: [{ path: tmp, shownAs: "keepalived.conf" }], dedupe: true });
    const lines = said ? said.split("\n").map((l) => l.trim()) : [];
    if (r.outputTruncated) {
      return { ok: false, output: `${said}\n... keepalived -t said more than ${MAX_OUTPUT_BYTES} bytes about this configuration; the rest is not shown`, warnings: [] };
    }
    if (r.exitCode === 0) return { ok: true, output: said, warnings: lines };
    if ((r.exitCode === 5 || r.exitCode === 6) && lines.length && lines.every((l) => benign.some((w) => w.test(l)))) {
      return { ok: true, output: said, warnings: lines };
    }
    return { ok: false, output: said || `keepalived -t exited with ${r.exitCode}`, warnings: [] };
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Addresses of the virtual_ipaddress and virtual_ipaddress_excluded blocks of a configuration. */
export function configuredVips(text: string): string[] {
  const out = new Set<string>();
  scanConf(text, (l) => {
    if (l.inner !== "virtual_ipaddress" && l.inner !== "virtual_ipaddress_excluded") return;
    const addr = l.words[0]!.split("/")[0];
    if (addr && isIP(addr)) out.add(normalizeIp(addr));
  });
  return [...out];
}

const precondition = (msg: string, details: string, reason: string) => new DomainError("precondition", msg, details, reason);

export class KeepalivedVrrp {
  private readonly lock = new KeyedLock();
  readonly dir: string;
  readonly configFile: string;
  /** What keepalived runs: the stored configuration plus the agent's notify FIFO (vrrp-notify.ts). */
  readonly runConfigFile: string;
  /** Where keepalived reports VRRP state changes (read by VrrpNotifyReader). */
  readonly notifyFifo: string;
  readonly pidFile: string;
  readonly vrrpPidFile: string;
  readonly checkersPidFile: string;
  /** "running" or "stopped": what the controller last asked for, so a reboot can restore it. */
  readonly wantedFile: string;
  /** The haproxy check script(s) the stored configuration's vrrp_script blocks name. */
  readonly checks: HaproxyCheckScripts;
  /** Called before every start (the agent makes and opens the notify FIFO); a failure is logged, the start goes on. */
  beforeStart?: () => Promise<void>;

  constructor(
    stateDir: string,
    readonly netns: string,
    private readonly logger: Logger = silentLogger,
    private readonly timeouts = { startMs: 5000, stopMs: 10_000 },
    /** The config policy uploads must pass (config-policy.ts); without it only `include` is refused. */
    private readonly policy?: () => KeepalivedPolicy,
  ) {
    this.dir = join(stateDir, "keepalived");
    this.configFile = join(this.dir, "keepalived.conf");
    this.runConfigFile = join(this.dir, "keepalived.run.conf");
    this.notifyFifo = notifyFifoPath(stateDir);
    this.pidFile = join(this.dir, "keepalived.pid");
    this.vrrpPidFile = join(this.dir, "vrrp.pid");
    this.checkersPidFile = join(this.dir, "checkers.pid");
    this.wantedFile = join(this.dir, "wanted-state");
    this.checks = new HaproxyCheckScripts(stateDir, () => this.config(), logger);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run("keepalived", fn);
  }

  async status(): Promise<KeepalivedStatus> {
    const pid = await livePid(this.pidFile, COMM);
    // Reported even without a parent: a SIGKILLed parent leaves its VRRP child running (and holding VIPs).
    const vrrpPid = await livePid(this.vrrpPidFile, COMM);
    const configured = await readFile(this.configFile).then(() => true, () => false);
    return { running: pid !== undefined, pid, vrrpPid, configured };
  }

  /** The configured VIPs and those of them present in the namespace now. */
  async vips(): Promise<{ vips: string[]; held: string[] }> {
    const vips = configuredVips((await this.config()) ?? "");
    if (!vips.length) return { vips, held: [] };
    const present = new Set((await listAddresses(this.netns)).flatMap((l) => l.addr_info ?? []).map((a) => normalizeIp(a.local)));
    return { vips, held: vips.filter((v) => present.has(v)) };
  }

  async config(): Promise<string | undefined> {
    return readFile(this.configFile, "utf8").catch(() => undefined);
  }

  /** Stores `text` as the configuration only if keepalived accepts it; the previous one stays otherwise. */
  upload(text: string): Promise<{ warnings: string[] }> {
    // Before anything is written or keepalived -t reads it.
    checkKeepalivedPolicy(text, this.policy?.() ?? { enabled: false, stateDir: "", extraPaths: [] }, "Failed to upload keepalived configuration.");
    return this.serial(async () => {
      // First, so `keepalived -t` finds the check script and keeps tracking it:
      // only missing scripts are created, and removed again unless the configuration is stored.
      const { notes, undo } = await this.checks.prepareFor(text);
      let stored = false;
      let check;
      try {
        check = await checkKeepalivedConfig(text, this.dir, this.netns, this.logger);
        // The caller's input is at fault: invalid (Connect InvalidArgument); REST keeps Octavia's 500 via the route's invalid_status.
        if (!check.ok) throw invalid("Failed to upload keepalived configuration.", check.output, "CONFIG_INVALID");
        await writeFileAtomic(this.configFile, text, 0o600);
        stored = true;
      } finally {
        if (!stored) {
          await undo().catch((e: Error) => this.logger.warn({ err: e.message }, "could not remove check scripts of a configuration that was not stored"));
        }
      }
      // The configuration is stored: a failure here is logged, not answered as
      // a failed upload. The follower writes them again on its next pass (every 2 s).
      await this.checks.writeFor(text).catch((e: Error) =>
        this.logger.error({ err: e.message }, "keepalived configuration stored, but its check scripts could not be written"));
      const warnings = [...notes, ...check.warnings];
      this.logger.info({ file: this.configFile, warnings }, "keepalived configuration stored");
      return { warnings };
    });
  }

  /** Starts keepalived; a running one is left alone. Ready once both pid files name live processes. */
  start(): Promise<KeepalivedStatus> {
    return this.serial(() => this.startNow());
  }

  /** start() without taking the queue (callers hold it). */
  private async startNow(): Promise<KeepalivedStatus> {
    const st = await this.status();
    if (st.running) {
      await writeFileIfChanged(this.wantedFile, "running\n");
      return st;
    }
    // Start or reload in a state that does not allow it is the caller's
    // precondition (failed_precondition over RPC; REST keeps Octavia's 500
    // through the route's precondition_status); keepalived failing is `failed`.
    if (!st.configured) throw precondition("Failed to start keepalived", "no keepalived configuration has been uploaded", "NOT_CONFIGURED");
    // Otherwise `ip netns exec` fails below and it reads as keepalived failing.
    if (this.netns && !existsSync(`/run/netns/${this.netns}`)) {
      throw precondition("Failed to start keepalived", `network namespace ${this.netns} does not exist yet; it is created when the VIP is plugged`, "NETNS_MISSING");
    }
    if (st.vrrpPid) await this.terminate(st.vrrpPid, "orphaned VRRP process");
    // Pid files of a killed daemon would make keepalived think it still runs.
    await this.removePidFiles();
    // Wanted-state first: a keepalived launched below that comes up late (or
    // an agent that dies meanwhile) is then adopted by resume()/supervise()
    // and ended by stop(), never left running unaccounted for.
    await writeFileIfChanged(this.wantedFile, "running\n");
    await this.beforeStart?.().catch((e: Error) => this.logger.warn({ err: e.message }, "keepalived notify FIFO not ready; VRRP state changes are not reported until the next start"));
    // The same at almost every start: no write then (a start on a full disk needs no space).
    await writeFileIfChanged(this.runConfigFile, renderRunConfig(this.configFile, this.notifyFifo), 0o600);
    const r = await run(
      "keepalived",
      ["-D", "-f", this.runConfigFile, "-p", this.pidFile, "-r", this.vrrpPidFile, "-c", this.checkersPidFile],
      { netns: this.netns, timeoutMs: 15_000, logger: this.logger },
    );
    if (r.exitCode !== 0) {
      await this.throwIfConfigRefused();
      throw failed("Failed to start keepalived", (r.stderr || r.stdout).trim(), "START_FAILED");
    }
    const up = await waitFor(async () => {
      const s = await this.status();
      return s.running && s.vrrpPid !== undefined;
    }, this.timeouts.startMs);
    if (!up) {
      await this.throwIfConfigRefused();
      throw failed(
        "Failed to start keepalived",
        `keepalived did not come up within ${this.timeouts.startMs} ms (see the system log); it stays wanted running, so the agent keeps trying until it is stopped`,
        "START_FAILED",
      );
    }
    const now = await this.status();
    this.logger.info({ pid: now.pid, vrrpPid: now.vrrpPid, netns: this.netns }, "keepalived started");
    return now;
  }

  /** SIGTERM (keepalived then releases its VIPs); stopping a stopped keepalived is fine. */
  stop(): Promise<KeepalivedStatus> {
    return this.serial(async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.wantedFile, "stopped\n");
      const st = await this.status();
      if (st.pid) await this.terminate(st.pid, "keepalived");
      // The parent's exit takes its children along; one left without a parent must go too.
      const orphan = await livePid(this.vrrpPidFile, COMM);
      if (orphan) await this.terminate(orphan, "orphaned VRRP process");
      await this.removePidFiles();
      if (st.pid) this.logger.info({ pid: st.pid }, "keepalived stopped");
      return this.status();
    });
  }

  /**
   * At agent start: a keepalived that was started and not stopped through
   * the agent, but is not running now (the amphora rebooted, or it died), is
   * started again. A running one (the agent alone restarted) is adopted as is.
   */
  resume(): Promise<"adopted" | "started" | "idle"> {
    // In the queue, so a stop() in flight is seen before deciding.
    return this.serial(async () => {
      const wanted = (await readFile(this.wantedFile, "utf8").catch(() => "")).trim();
      const st = await this.status();
      if (st.running) return "adopted";
      if (wanted !== "running" || !st.configured) return "idle";
      await this.startNow();
      return "started";
    });
  }

  /**
   * There is no systemd here to restart a keepalived that died: every
   * `intervalMs` one that should run (started, not stopped, through the
   * agent) but does not is started again. Returns the function that ends
   * the supervision.
   */
  supervise(intervalMs = 5000): () => void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.resume()
        .then((r) => { if (r === "started") this.logger.warn({ netns: this.netns }, "keepalived was not running although it should; started it again"); })
        .catch((e) => this.logger.error({ err: e }, "could not restart keepalived"))
        .finally(() => { busy = false; });
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** SIGHUP: keepalived re-reads the stored configuration without a state change. */
  reload(): Promise<KeepalivedStatus> {
    return this.serial(async () => {
      const st = await this.status();
      if (!st.running) throw precondition("Failed to reload keepalived", "keepalived is not running", "NOT_RUNNING");
      this.signal(st.pid!, "SIGHUP");
      this.logger.info({ pid: st.pid }, "keepalived reloaded");
      return st;
    });
  }

  /**
   * After a start that failed: when the stored configuration no longer
   * passes `keepalived -t` (it did at upload; since then an interface it
   * names may have gone), that is why, and the caller's to fix (upload
   * another). Checked only on this failure path, so a start costs nothing more.
   */
  private async throwIfConfigRefused(): Promise<void> {
    const text = await this.config();
    if (text === undefined) return;
    const check = await checkKeepalivedConfig(text, this.dir, this.netns, this.logger).catch((e: Error) => {
      this.logger.warn({ err: e.message }, "could not check the stored keepalived configuration after a failed start");
      return undefined;
    });
    if (check && !check.ok) {
      throw precondition("Failed to start keepalived", `keepalived refuses the stored configuration: ${check.output}`, "CONFIG_REFUSED");
    }
  }

  /** SIGTERM, bounded wait, then SIGKILL; throws when the process survives both. */
  private async terminate(pid: number, what: string): Promise<void> {
    this.signal(pid, "SIGTERM");
    let gone = await waitFor(async () => !(await isRunning(pid, COMM)), this.timeouts.stopMs);
    if (!gone) {
      this.logger.warn({ pid, what }, "keepalived ignored SIGTERM; killing it");
      this.signal(pid, "SIGKILL");
      gone = await waitFor(async () => !(await isRunning(pid, COMM)), 2000);
    }
    if (!gone) throw failed("Failed to stop keepalived", `${what} ${pid} is still running`, "STOP_FAILED");
  }

  private signal(pid: number, sig: NodeJS.Signals) {
    try {
      process.kill(pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw new DomainError("failed", `Failed to signal keepalived`, String(e));
    }
  }

  private async removePidFiles() {
    for (const f of [this.pidFile, this.vrrpPidFile, this.checkersPidFile]) await rm(f, { force: true });
  }
}
