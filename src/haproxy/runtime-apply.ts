// Applies server changes (config-model.ts) to a running haproxy worker
// through the master CLI, and checks afterwards that the worker runs what
// the new config says. Any refusal, timeout or mismatch is returned as a
// reason; the caller then reloads from the stored config, so the process
// always ends up running exactly that config.
import { masterCommand } from "./master-cli.js";
import { describeChanges, diffConfigs, parseConfigModel, type ConfigModel, type ServerChange, type ServerLine } from "./config-model.js";

export interface RuntimeTarget {
  masterSocket: string;
  /** The current worker: commands go to it by pid (`@!<pid>`), never to a leaving one. */
  workerPid: number;
}

export interface ApplyOptions {
  /** How long a removed server may keep connections before the change falls back to a reload (default 10 s). */
  drainTimeoutMs?: number;
  /** Per command (default 5 s). */
  commandTimeoutMs?: number;
  /** Test hook: called before each command; a throw fails that step. */
  beforeCommand?: (command: string) => void | Promise<void>;
}

export type ApplyResult = { ok: true; commands: number } | { ok: false; reason: string; commands: number };

/** `show servers state` admin-state bits (management guide). */
const FMAINT = 0x01;
const FDRAIN = 0x08;

class StepFailed extends Error {}

/**
 * Runs the changes in a safe order: servers are added (and enabled as the
 * config says) first, then existing ones changed, then removed ones put in
 * maintenance and deleted once their connections have ended (haproxy refuses
 * `del server` before that; requests in flight finish). Stops at the first
 * failure.
 */
export async function applyServerChanges(t: RuntimeTarget, changes: ServerChange[], o: ApplyOptions = {}): Promise<ApplyResult> {
  let commands = 0;
  const run = async (command: string, ok: (answer: string) => boolean): Promise<string> => {
    commands++;
    if (o.beforeCommand) {
      try {
        await o.beforeCommand(command);
      } catch (e) {
        throw new StepFailed(`"${command}": ${(e as Error).message}`);
      }
    }
    let answer: string;
    try {
      answer = await masterCommand(t.masterSocket, `@!${t.workerPid} ${command}`, o.commandTimeoutMs ?? 5000);
    } catch (e) {
      throw new StepFailed(`"${command}": ${(e as Error).message}`);
    }
    if (!ok(answer.trim())) throw new StepFailed(`"${command}" answered: ${answer.trim().split("\n")[0] || "(nothing)"}`);
    return answer;
  };
  const empty = (a: string) => a === "";
  try {
    for (const c of changes) {
      if (c.kind !== "add") continue;
      const s = c.server;
      const id = `${c.backend}/${s.name}`;
      await run(`add server ${id} ${s.target} weight ${s.weight} ${s.options.join(" ")}`.trimEnd(), (a) => a.startsWith("New server registered"));
      // A dynamic server starts in maintenance with its checks off.
      if (s.check) await run(`enable health ${id}`, empty);
      if (s.agentCheck) await run(`enable agent ${id}`, empty);
      if (!s.disabled) await run(`set server ${id} state ready`, empty);
    }
    for (const c of changes) {
      if (c.kind !== "set") continue;
      const id = `${c.backend}/${c.to.name}`;
      // Into maintenance before the other changes, out of it after them.
      if (c.to.disabled && !c.from.disabled) await run(`set server ${id} state maint`, empty);
      if (c.from.target !== c.to.target) {
        await run(`set server ${id} addr ${c.to.ip} port ${c.to.port}`, (a) => /^(IP changed|port changed|no need to change)/.test(a));
      }
      if (c.from.weight !== c.to.weight) await run(`set server ${id} weight ${c.to.weight}`, empty);
      if (!c.to.disabled && c.from.disabled) await run(`set server ${id} state ready`, empty);
    }
    const deadline = Date.now() + (o.drainTimeoutMs ?? 10_000);
    const dels = changes.filter((c): c is Extract<ServerChange, { kind: "del" }> => c.kind === "del");
    for (const c of dels) {
      const id = `${c.backend}/${c.server.name}`;
      // An agent could take the server out of maintenance again.
      if (c.server.agentCheck) await run(`disable agent ${id}`, empty);
      await run(`set server ${id} state maint`, empty);
    }
    for (const c of dels) {
      const id = `${c.backend}/${c.server.name}`;
      for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
        const a = (await run(`del server ${id}`, () => true)).trim();
        if (a.startsWith("Server deleted")) break;
        // Connections still open (active, idle or queued): they end on their own.
        if (!/connection|queue/i.test(a) || Date.now() > deadline) throw new StepFailed(`"del server ${id}" answered: ${a.split("\n")[0] || "(nothing)"}`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  } catch (e) {
    if (e instanceof StepFailed) return { ok: false, reason: e.message, commands };
    throw e;
  }
  return { ok: true, commands };
}

export interface RunningServer {
  backend: string;
  name: string;
  addr: string;
  port: number;
  admin: number;
  weight: number;
}

/** Parses `show servers state` (format 1): one entry per server. */
export function parseServersState(text: string): RunningServer[] {
  const out: RunningServer[] = [];
  let cols: string[] | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("# be_id")) {
      cols = line.slice(2).trim().split(/\s+/);
      continue;
    }
    if (!cols || line.startsWith("#") || !line.trim()) continue;
    const f = line.trim().split(/\s+/);
    const get = (name: string) => f[cols!.indexOf(name)] ?? "";
    out.push({
      backend: get("be_name"), name: get("srv_name"), addr: get("srv_addr"), port: Number(get("srv_port")),
      admin: Number(get("srv_admin_state")), weight: Number(get("srv_uweight")),
    });
  }
  if (!cols) throw new Error(`not a "show servers state" answer: ${text.trim().split("\n")[0] ?? ""}`);
  return out;
}

/** What a running server differs in from its config line ("" when it matches). */
function mismatch(r: RunningServer, s: ServerLine): string {
  const diffs: string[] = [];
  if (s.ip !== undefined && (r.addr !== s.ip || r.port !== s.port)) diffs.push(`address ${r.addr}:${r.port}, config ${s.ip}:${s.port}`);
  if (r.weight !== s.weight) diffs.push(`weight ${r.weight}, config ${s.weight}`);
  if (Boolean(r.admin & FMAINT) !== s.disabled) diffs.push(r.admin & FMAINT ? "in maintenance, config enabled" : "enabled, config disabled");
  if (r.admin & FDRAIN) diffs.push("draining");
  return diffs.join("; ");
}

/**
 * Checks the worker against the new config: every backend has exactly the
 * config's servers, and each server the change touched has its address,
 * weight and admin state. (Servers it did not touch keep what they had,
 * e.g. states restored from the server-state file.) Returns what differs,
 * or undefined.
 */
export async function verifyServers(t: RuntimeTarget, next: ConfigModel, changes: ServerChange[], timeoutMs = 5000): Promise<string | undefined> {
  let running: RunningServer[];
  try {
    running = parseServersState(await masterCommand(t.masterSocket, `@!${t.workerPid} show servers state`, timeoutMs));
  } catch (e) {
    return `could not read the running servers: ${(e as Error).message}`;
  }
  const byBackend = new Map<string, Map<string, RunningServer>>();
  for (const r of running) {
    let m = byBackend.get(r.backend);
    if (!m) byBackend.set(r.backend, (m = new Map()));
    m.set(r.name, r);
  }
  for (const sec of next.sections) {
    if (sec.type !== "backend") continue;
    const have = byBackend.get(sec.name) ?? new Map<string, RunningServer>();
    for (const name of sec.servers.keys()) if (!have.has(name)) return `backend ${sec.name}: server ${name} is not running`;
    for (const name of have.keys()) if (!sec.servers.has(name)) return `backend ${sec.name}: server ${name} still runs`;
  }
  for (const c of changes) {
    if (c.kind === "del") continue;
    const s = c.kind === "add" ? c.server : c.to;
    const r = byBackend.get(c.backend)?.get(s.name);
    if (!r) return `backend ${c.backend}: server ${s.name} is not running`;
    const d = mismatch(r, s);
    if (d) return `backend ${c.backend}: server ${s.name}: ${d}`;
  }
  return undefined;
}

export type ApplyDecision =
  /** The running worker already runs this config (same sections, lines and servers). */
  | { method: "none" }
  /** Applied and verified on the running worker. */
  | { method: "runtime"; summary: string; commands: number }
  /** Reload needed: the first difference the runtime API cannot make, or the step that failed. */
  | { method: "reload"; reason: string; runtimeTried: boolean };

/**
 * Brings the running worker from the served config to the stored one
 * without a reload when the difference allows it (config-model.ts), and
 * verifies the result. A "reload" answer after `runtimeTried` means the
 * worker may be half-changed: the caller must reload from the stored config.
 */
export async function applyWithoutReload(t: RuntimeTarget, servedText: string, storedText: string, o: ApplyOptions = {}): Promise<ApplyDecision> {
  const next = parseConfigModel(storedText);
  const d = diffConfigs(parseConfigModel(servedText), next);
  if (d.kind === "same") return { method: "none" };
  if (d.kind === "reload") return { method: "reload", reason: d.reason, runtimeTried: false };
  const r = await applyServerChanges(t, d.changes, o);
  if (!r.ok) return { method: "reload", reason: `runtime apply failed: ${r.reason}`, runtimeTried: true };
  const wrong = await verifyServers(t, next, d.changes, o.commandTimeoutMs);
  if (wrong) return { method: "reload", reason: `runtime apply not verified: ${wrong}`, runtimeTried: true };
  return { method: "runtime", summary: describeChanges(d.changes), commands: r.commands };
}
