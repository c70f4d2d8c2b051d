// keepalived's health check of haproxy for active/standby pairs.
//
// Octavia's controller renders every VRRP configuration with
//   vrrp_script check_script { script <base_path>/vrrp/check_script.sh ... }
// tracked by the VRRP instance, and leaves it to the amphora to provide that
// script. While it fails, keepalived puts the instance in FAULT, gives up the
// VIP and the peer takes it. Without the script keepalived disables the
// tracking ("Disabling track script ... not found") and a MASTER whose
// haproxy died keeps the VIP: traffic is black-holed.
//
// The agent writes the script(s) a stored VRRP configuration names, but only
// directly in <stateDir>/vrrp/ (Octavia's folder for them, with base_path =
// the state dir), so an uploaded configuration can never make the agent
// overwrite anything else. The script is plain sh (keepalived runs it every
// few seconds; no Node, no forks): it fails unless every load balancer that
// should run has a live haproxy master. "Should run" has one source of
// truth: the haproxy manager's wanted state, read through the catalog
// (wantedRunning()): started through the agent and not stopped (or
// deleted) through it — a haproxy that died or failed to restart stays
// wanted, so the check keeps failing until it serves again. The script is
// rewritten on the catalog's started/stopped/deleted events when the set
// changes; <stateDir>/keepalived/haproxy-wanted is written beside it as a
// record of that set (for operators; nothing reads it back).
import { lstat, mkdir, rm, rmdir } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { writeFileAtomic, writeFileIfChanged } from "../system/fs-atomic.js";
import { isStorageError, type Conditions } from "../system/conditions.js";
import { KeyedLock } from "../system/keyed-lock.js";
import { lbPaths } from "../haproxy/layout.js";
import type { LoadBalancerCatalog } from "../haproxy/catalog.js";
import { scanConf } from "./conf-scan.js";

/** Folder the agent writes check scripts into (Octavia: <base_path>/vrrp). */
export function checkScriptDir(stateDir: string): string {
  return resolve(stateDir, "vrrp");
}

/** The `script` paths of the vrrp_script blocks of a keepalived configuration (first word, quotes removed). */
export function checkScriptPaths(text: string): string[] {
  const out = new Set<string>();
  scanConf(text, (l) => {
    if (l.inner !== "vrrp_script" || l.words[0] !== "script" || l.words.length < 2) return;
    // `script "/path arg"` is one quoted word: the program is its first word.
    const path = l.words[1]!.trim().split(/\s+/)[0];
    if (path) out.add(path);
  });
  return [...out];
}

/** Where the agent may write a named check script: a plain file name directly in <stateDir>/vrrp/. */
export function confineCheckScript(stateDir: string, path: string): { path: string } | { why: string } {
  const dir = checkScriptDir(stateDir);
  if (!isAbsolute(path)) return { why: `check script ${path} is not an absolute path` };
  const abs = resolve(path);
  if (dirname(abs) !== dir || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$/.test(basename(abs))) {
    return { why: `check script ${path} is not directly in ${dir}; the agent does not write it` };
  }
  return { path: abs };
}

/** sh single-quoting. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The script: exit 0 only when every listed pid file names a live haproxy. */
export function renderCheckScript(pidFiles: string[]): string {
  const head = [
    "#!/bin/sh",
    "# Written by amphora-agent (src/keepalived/check-script.ts); rewritten when load",
    "# balancers start, stop or are deleted. keepalived's vrrp_script: fails unless",
    "# every load balancer that should run has a live haproxy master.",
  ];
  if (!pidFiles.length) {
    // As Octavia: an amphora with no load balancer to serve must not hold the VIP.
    return [...head, "echo 'no load balancer is started on this amphora'", "exit 1", ""].join("\n");
  }
  return [
    ...head,
    "alive() {",
    "  read -r pid rest < \"$1\" 2>/dev/null || return 1",
    "  case $pid in ''|*[!0-9]*) return 1 ;; esac",
    "  read -r stat < \"/proc/$pid/stat\" 2>/dev/null || return 1",
    // "PID (COMM) STATE ...": a dead master nobody reaped is a zombie (Z), and
    // kill -0 would still succeed on it; a reused pid is another program.
    "  name=${stat#*\\(}; name=${name%\\)*}",
    "  state=${stat##*\\) }; state=${state%% *}",
    "  case $name in haproxy*) ;; *) return 1 ;; esac",
    "  case $state in Z|X|x) return 1 ;; esac",
    "}",
    "status=0",
    `for f in ${pidFiles.map(q).join(" ")}; do`,
    "  alive \"$f\" || { echo \"haproxy is not running: $f\"; status=1; }",
    "done",
    "exit $status",
    "",
  ].join("\n");
}

/** What the follower reads: the catalog (its wantedRunning() is the manager's wanted state). */
export type LoadBalancerSource = LoadBalancerCatalog;

const CONDITION_KEY = "start_write:keepalived-check-script";

export class HaproxyCheckScripts {
  /** Where a write the storage refused at start is reported (set by follow()). */
  private conditions?: Conditions;
  private readonly lock = new KeyedLock();
  /** The catalog followed (none before follow(): nothing is required). */
  private source?: LoadBalancerCatalog;
  /** The set the script on disk was last rendered from. */
  private written = "";
  /** A script write failed (disk full...): written again on the follower's next pass. */
  private stale = false;
  /** Record of the load balancers the check requires, one id a line (derived; nothing reads it back). */
  readonly wantedFile: string;

  constructor(
    private readonly stateDir: string,
    /** The stored keepalived configuration (names the scripts). */
    private readonly config: () => Promise<string | undefined>,
    private readonly logger: Logger = silentLogger,
  ) {
    this.wantedFile = join(stateDir, "keepalived", "haproxy-wanted");
  }

  /**
   * Ids the check on disk requires running, sorted: the set the script and
   * the record were last written from (they follow `required()` on events).
   */
  wantedIds(): string[] {
    return this.written ? this.written.split(",") : [];
  }

  /**
   * Ids the check must require now, sorted: every load balancer of the
   * catalog that runs or that the manager wants running.
   */
  private required(): string[] {
    const src = this.source;
    if (!src) return [];
    const ids = new Set(src.wantedRunning?.() ?? []);
    for (const r of src.list()) if (r.running) ids.add(r.lbId);
    return [...ids].sort();
  }

  /**
   * Writes every script `text` names inside <stateDir>/vrrp/ (before
   * `keepalived -t` sees the configuration, so it does not disable the
   * tracking). Returns a note for each one it does not write.
   */
  writeFor(text: string): Promise<string[]> {
    return this.lock.run("check", () => this.writeNow(text));
  }

  /**
   * Before `keepalived -t` sees a configuration that is not stored yet: creates
   * only the scripts it names that do not exist (so keepalived keeps tracking
   * them), and leaves existing ones alone. `undo` removes what this created
   * (the files, and the folder if this made it): a configuration keepalived
   * rejects changes nothing.
   */
  prepareFor(text: string): Promise<{ notes: string[]; undo: () => Promise<void> }> {
    return this.lock.run("check", async () => {
      const dir = checkScriptDir(this.stateDir);
      const notes: string[] = [];
      const created: string[] = [];
      let madeDir = false;
      const undo = () => this.lock.run("check", async () => {
        for (const f of created) await rm(f, { force: true });
        if (madeDir) await rmdir(dir).catch(() => {}); // not if something else was put there meanwhile
      });
      try {
        for (const p of checkScriptPaths(text)) {
          const c = confineCheckScript(this.stateDir, p);
          if ("why" in c) {
            notes.push(c.why);
            continue;
          }
          if (await lstat(c.path).then(() => true, () => false)) continue;
          if (!madeDir && !(await lstat(dir).then(() => true, () => false))) {
            await mkdir(dir, { recursive: true, mode: 0o755 });
            madeDir = true;
          }
          created.push(c.path);
          await writeFileAtomic(c.path, this.render(), 0o755);
        }
      } catch (e) {
        for (const f of created) await rm(f, { force: true }).catch(() => {});
        if (madeDir) await rmdir(dir).catch(() => {});
        throw e;
      }
      return { notes, undo };
    });
  }

  private render(ids = this.required()): string {
    return renderCheckScript(ids.map((id) => lbPaths(this.stateDir, this.stateDir, id).pidFile));
  }

  private async writeNow(text: string | undefined, ids?: string[]): Promise<string[]> {
    // Stale until a write completes: the follower's next pass tries again.
    this.stale = true;
    const notes = await this.writeScripts(text, ids);
    this.stale = false;
    return notes;
  }

  private async writeScripts(text: string | undefined, ids?: string[]): Promise<string[]> {
    if (text === undefined) return [];
    const body = this.render(ids);
    const notes: string[] = [];
    for (const p of checkScriptPaths(text)) {
      const c = confineCheckScript(this.stateDir, p);
      if ("why" in c) {
        notes.push(c.why);
        continue;
      }
      await mkdir(dirname(c.path), { recursive: true, mode: 0o755 });
      // Atomic: keepalived may run it at any moment and must never see half a script.
      await writeFileIfChanged(c.path, body, 0o755);
    }
    return notes;
  }

  /**
   * Follows the load balancers: renders the script from the catalog now,
   * then again on each started/stopped/deleted event when the required set
   * changed (and, after a failed write, on the next tick). Returns the
   * function that stops following.
   */
  async follow(lbs: LoadBalancerSource, retryMs = 2000, conditions?: Conditions): Promise<() => Promise<void>> {
    this.source = lbs;
    this.conditions = conditions;
    await this.lock.run("check", async () => {
      try {
        await this.reconsider(true);
      } catch (e) {
        // The storage refused (full disk): the start goes on, the follower writes again on its next tick.
        if (!conditions || !isStorageError(e)) throw e;
        this.stale = true;
        conditions.report("start_write_failed", CONDITION_KEY, `could not write the keepalived check script or its list of load balancers at start: ${(e as Error).message}; written again every ${retryMs} ms until it succeeds`);
      }
    });
    let following = true;
    const reconcile = () => {
      if (!following) return;
      void this.lock.run("check", () => (following ? this.reconsider(false) : Promise.resolve())).catch((err) =>
        this.logger.error({ err: (err as Error).message }, "could not update the keepalived check script"));
    };
    const onEvent = (e: { type: string; lbId: string }) => {
      if (e.type === "started" || e.type === "stopped" || e.type === "deleted") reconcile();
    };
    lbs.on("event", onEvent);
    // Only to retry a write that failed: the state itself comes with the events.
    const timer = setInterval(() => {
      if (this.stale) reconcile();
    }, retryMs);
    timer.unref();
    // Stopping waits for an update in flight, so nothing is written after.
    return async () => {
      following = false;
      clearInterval(timer);
      lbs.off("event", onEvent);
      await this.lock.run("check", async () => {});
    };
  }

  /** Rewrites the script (and the record) when the required set changed since the last write, or one failed. */
  private async reconsider(force: boolean): Promise<void> {
    const ids = this.required();
    const key = ids.join(",");
    if (!force && key === this.written && !this.stale) return;
    const before = new Set(this.written ? this.written.split(",") : []);
    for (const id of ids) if (!before.delete(id)) this.logger.info({ lbId: id, wanted: true }, "keepalived check script: load balancer required");
    for (const id of before) this.logger.info({ lbId: id, wanted: false }, "keepalived check script: load balancer no longer required");
    this.stale = true;
    await this.persist(ids);
    await this.writeNow(await this.config(), ids);
    this.written = key;
    this.conditions?.clear(CONDITION_KEY);
  }

  private async persist(ids: string[]): Promise<void> {
    // Its own folder only: a state dir that is gone stays gone.
    await mkdir(dirname(this.wantedFile), { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    // Unchanged at almost every start: no write then (a start on a full disk needs no space).
    await writeFileIfChanged(this.wantedFile, ids.map((id) => id + "\n").join(""), 0o600, { createDir: false });
  }
}
