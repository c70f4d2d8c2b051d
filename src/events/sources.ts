// Where events come from, apart from the small callbacks in the services
// (uploads, plugs, certificate rotation, agent config): the haproxy
// catalog's lifecycle events, a watch for old workers that outlive a
// reload, and keepalived's VRRP state changes.
import type { LoadBalancerCatalog, LoadBalancerEvent } from "../haproxy/catalog.js";
import { currentWorker, showProc } from "../haproxy/master.js";
import { silentLogger, type Logger } from "../log.js";
import type { EventLog } from "./event-log.js";
import type { AgentEvent } from "./model.js";

/** The event a catalog event stands for (undefined: none, e.g. "created": the upload's config_stored says it). */
export function fromCatalogEvent(e: LoadBalancerEvent): AgentEvent | undefined {
  switch (e.type) {
    case "started":
      if (e.cause === "restart" || e.cause === "resume") {
        return { kind: "haproxy_restarted", lbId: e.lbId, version: e.version ?? 0, cause: e.cause === "restart" ? "exited" : "agent_start", restarts: e.restarts ?? 0 };
      }
      return { kind: "config_applied", lbId: e.lbId, version: e.version ?? 0, md5: e.md5 ?? "", method: "start", reason: "" };
    case "stopped":
      if (e.cause === "exited") {
        return { kind: "haproxy_exited", lbId: e.lbId, restartPlanned: e.restartInMs !== undefined, restartInMs: e.restartInMs ?? 0 };
      }
      return { kind: "haproxy_stopped", lbId: e.lbId, deleted: e.cause === "delete" };
    case "reloaded":
      return { kind: "config_applied", lbId: e.lbId, version: e.version ?? 0, md5: e.md5 ?? "", method: e.method ?? "reload", reason: e.reason ?? "" };
    case "reload_failed":
      return {
        kind: "reload_failed", lbId: e.lbId, failedVersion: e.version ?? 0, reason: e.reason ?? "",
        rolledBack: e.rolledBack !== undefined, restoredVersion: e.rolledBack?.restoredVersion ?? 0, storedVersion: e.rolledBack?.storedVersion ?? 0,
      };
    case "deleted":
      return { kind: "load_balancer_deleted", lbId: e.lbId };
    case "created":
      return undefined;
  }
}

export interface LingerOptions {
  /** First look for old workers this long after a reload (default 10 s). */
  afterMs?: number;
  /** Then again this often while some are left (default 10 s). */
  everyMs?: number;
}

/**
 * Publishes the catalog's events, and watches for old workers after each
 * reload: when some still run `afterMs` later it publishes
 * lingering_workers (again whenever the set changes), and count 0 once
 * they are all gone. Returns the function that stops it.
 */
export function publishCatalogEvents(catalog: LoadBalancerCatalog, log: EventLog, o: LingerOptions & { logger?: Logger } = {}): () => void {
  const logger = o.logger ?? silentLogger;
  const afterMs = o.afterMs ?? 10_000;
  const everyMs = o.everyMs ?? 10_000;
  /** Per load balancer: the planned look, and the old worker pids last reported. */
  const watches = new Map<string, { timer: NodeJS.Timeout; reported: string; gen: number }>();
  let gen = 0;
  let stopped = false;

  const forget = (lbId: string) => {
    const w = watches.get(lbId);
    if (w) clearTimeout(w.timer);
    watches.delete(lbId);
  };

  const plan = (lbId: string, delayMs: number, reported: string) => {
    forget(lbId);
    const g = ++gen;
    const timer = setTimeout(() => void look(lbId, reported, g), delayMs);
    timer.unref();
    watches.set(lbId, { timer, reported, gen: g });
  };

  /** Still the planned look (no newer reload, stop or delete meanwhile). */
  const current = (lbId: string, g: number) => !stopped && watches.get(lbId)?.gen === g;

  const look = async (lbId: string, reported: string, g: number) => {
    const ref = catalog.get(lbId);
    if (!current(lbId, g)) return;
    if (!ref?.running) {
      watches.delete(lbId);
      return;
    }
    let pids: number[];
    let oldest = 0;
    try {
      const p = await showProc(ref.masterSocket);
      const cur = currentWorker(p);
      const old = p.workers.filter((w) => w !== cur);
      pids = old.map((w) => w.pid).sort((a, b) => a - b);
      oldest = old.reduce((m, w) => Math.max(m, w.uptimeSeconds), 0);
    } catch (e) {
      // The master re-executing (another reload) or gone: look again later.
      logger.debug({ lbId, err: (e as Error).message }, "could not look for lingering haproxy workers");
      if (current(lbId, g)) plan(lbId, everyMs, reported);
      return;
    }
    if (!current(lbId, g)) return;
    const key = pids.join(",");
    if (key !== reported && (pids.length || reported)) {
      log.publish({ kind: "lingering_workers", lbId, count: pids.length, oldestSeconds: oldest, pids });
    }
    if (pids.length) plan(lbId, everyMs, key);
    else watches.delete(lbId);
  };

  const onEvent = (e: LoadBalancerEvent) => {
    const ev = fromCatalogEvent(e);
    if (ev) log.publish(ev);
    if (e.type === "reloaded") {
      // Keep what was reported: a second reload while old workers linger
      // reports the new set, not a fresh "gone".
      plan(e.lbId, afterMs, watches.get(e.lbId)?.reported ?? "");
    } else if (e.type === "stopped" || e.type === "deleted") {
      // Old workers go with the master (or are the next reload's business).
      forget(e.lbId);
    }
  };
  catalog.on("event", onEvent);
  return () => {
    stopped = true;
    catalog.off("event", onEvent);
    for (const id of [...watches.keys()]) forget(id);
  };
}
