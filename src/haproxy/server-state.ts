// Server-state policy: where the agent may save `show servers state` before
// a reload, for a config's `load-server-state-from-file`. The path comes
// from an uploaded config, so the agent writes only Octavia's location for
// it or directly inside the load balancer's own folder, never one of the
// agent's files there.
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { writeFileAtomic } from "../system/fs-atomic.js";
import type { Logger } from "../log.js";
import { masterCommand } from "./master-cli.js";
import { parseConfigFacts } from "./config-facts.js";
import { parseConfigModel } from "./config-model.js";
import { rewriteServerState } from "./server-state-rewrite.js";
import type { LbPaths } from "./layout.js";

/** Files the agent keeps in a load balancer's folder (see layout.ts); never a server-state-file. */
const RESERVED_IN_LB_DIR = new Set(["haproxy.cfg", "haproxy.cfg.last-good", "meta.json", "haproxy.pid", "master.sock"]);

/**
 * Where the agent may write a config's `server-state-file`: Octavia's
 * location for it, or an absolute path directly inside this load
 * balancer's own folder, not one of the agent's files there. Anything else
 * (the agent config, the PKI, another load balancer's files, ...) is never
 * written.
 */
export function serverStateTarget(stateDir: string, paths: LbPaths, file: string | undefined): { path?: string; why?: string } {
  if (!file) return {};
  if (!isAbsolute(file)) return { why: `server-state-file ${file} is not an absolute path` };
  const abs = resolve(file);
  const name = basename(abs);
  // Where Octavia's controller points it: <base_path>/<lb_id>/servers-state
  // (a folder of its own per load balancer, used for nothing else here).
  if (abs === resolve(stateDir, basename(paths.dir), "servers-state")) return { path: abs };
  if (dirname(abs) !== resolve(paths.dir)) {
    return { why: `server-state-file ${file} is outside this load balancer's folder ${paths.dir}` };
  }
  if (RESERVED_IN_LB_DIR.has(name) || name.startsWith(".")) {
    return { why: `server-state-file ${file} names a file the agent keeps in ${paths.dir}` };
  }
  return { path: abs };
}

/** Upload warning for a server-state-file the agent will not save to ("" when fine). */
export function serverStateNote(stateDir: string, paths: LbPaths, file: string | undefined): string {
  const t = serverStateTarget(stateDir, paths, file);
  return t.why ? `${t.why}; the agent will not save server states there before reloads (use ${paths.serverState})` : "";
}

/**
 * Saves server states before a reload (and after a runtime apply or a
 * reload that applied nothing), only where serverStateTarget allows;
 * failures are logged. `text` is the config haproxy runs next, `served` the
 * one it ran (when known): runtime apply changes what the config owns, so
 * the saved states are rewritten to follow `text` (server-state-rewrite.ts;
 * `all` after a runtime apply that failed half-way).
 */
export async function saveServerState(
  stateDir: string, lbId: string, paths: LbPaths, text: string, logger: Logger, o: { served?: string; all?: boolean } = {},
): Promise<void> {
  const t = serverStateTarget(stateDir, paths, parseConfigFacts(text).serverStateFile);
  if (t.why) logger.warn({ lbId }, `${t.why}; server states not saved before reload`);
  const abs = t.path;
  if (!abs) return;
  try {
    const state = await masterCommand(paths.masterSocket, "@1 show servers state", 5000);
    const next = parseConfigModel(text);
    const served = o.served === undefined ? undefined : o.served === text ? next : parseConfigModel(o.served);
    await writeFileAtomic(abs, rewriteServerState(state, served, next, { all: o.all }), 0o600);
  } catch (e) {
    logger.warn({ lbId, err: (e as Error).message }, "could not save server state before reload");
  }
}
