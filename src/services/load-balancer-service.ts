// LoadBalancerService: request -> LoadBalancerManager -> response. Pure
// data mapping; the work happens in src/haproxy. UDP listeners live in the
// keepalived LVS store (src/keepalived/lvs.ts) but share two Octavia routes
// with haproxy: DELETE /1.0/listeners/{id} and GET /1.0/listeners.
import type { ServiceImpl } from "@connectrpc/connect";
import { LoadBalancerAction, LoadBalancerService } from "../gen/amphora/v1/load_balancer_pb.js";
import { ApplyMethod } from "../gen/amphora/v1/events_pb.js";
import type { LastApply } from "../haproxy/meta.js";
import type { LoadBalancerManager, LbStatus } from "../haproxy/manager.js";
import type { LvsListeners } from "../keepalived/lvs.js";
import { DomainError, invalid } from "../errors.js";
import type { EventLog } from "../events/event-log.js";

const ACTIONS: Partial<Record<LoadBalancerAction, "start" | "stop" | "reload">> = {
  [LoadBalancerAction.START]: "start",
  [LoadBalancerAction.STOP]: "stop",
  [LoadBalancerAction.RELOAD]: "reload",
};

const guard = (v: bigint | undefined, m: string | undefined) => ({
  expectedVersion: v === undefined ? undefined : Number(v),
  expectedMd5: m,
});

const METHODS: Record<LastApply["method"], ApplyMethod> = {
  runtime: ApplyMethod.RUNTIME,
  reload: ApplyMethod.RELOAD,
  start: ApplyMethod.START,
};
const method = (a: LastApply | undefined) => (a ? METHODS[a.method] : ApplyMethod.UNSPECIFIED);

function statusMsg(s: LbStatus) {
  return {
    lbId: s.lbId,
    state: s.state,
    configVersion: BigInt(s.configVersion),
    configMd5: s.configMd5,
    servedVersion: BigInt(s.servedVersion),
    masterPid: s.masterPid,
    workers: s.workers.map((w) => ({ pid: w.pid, reloads: w.reloads, uptimeSeconds: BigInt(w.uptimeSeconds), old: w.old })),
    lingeringWorkers: s.lingeringWorkers,
    oldestLingeringSeconds: BigInt(s.oldestLingeringSeconds),
    reloads: s.reloads,
    failedReloads: s.failedReloads,
    lastAction: s.lastAction,
    listenerIds: s.listenerIds,
    recentActions: s.recentActions.map((a) => ({
      action: a.action, ok: a.ok, configVersion: BigInt(a.configVersion), details: a.details,
      finishedAtMs: BigInt(a.finishedAtMs), durationMs: a.durationMs,
    })),
    wanted: s.wanted,
    restarts: s.restarts,
    lastExitAtMs: BigInt(s.lastExitAtMs),
    restartPending: s.restartPending,
    lastApplyMethod: method(s.lastApply),
    lastApplyReason: s.lastApply?.reason ?? "",
  };
}

export function loadBalancerService(lbs: LoadBalancerManager, lvs?: LvsListeners, events?: EventLog): Partial<ServiceImpl<typeof LoadBalancerService>> {
  return {
    async putConfig(req) {
      const lbId = req.lbId.toLowerCase();
      let r;
      try {
        r = await lbs.putConfig(req.amphoraId, req.lbId, req.config, guard(req.expectedVersion, req.expectedMd5));
      } catch (e) {
        const d = e instanceof DomainError ? e : undefined;
        events?.publish({
          kind: "config_rejected", target: "haproxy", lbId, reason: (e as Error).message, details: d?.details ?? "", code: d?.reason ?? "",
        });
        throw e;
      }
      // An upload of the config already stored changes nothing: no event.
      if (r.changed) events?.publish({ kind: "config_stored", target: "haproxy", lbId, version: r.version, md5: r.md5 });
      return { message: "OK", details: r.warnings, md5: r.md5, version: BigInt(r.version) };
    },
    async getConfig(req) {
      const r = await lbs.getConfig(req.lbId);
      return { config: r.config, md5: r.md5, version: BigInt(r.version) };
    },
    async controlLoadBalancer(req) {
      const action = ACTIONS[req.action];
      if (!action) throw invalid("Invalid Request", `Unknown action: ${req.action}`, "UNKNOWN_ACTION");
      // Octavia sends a UDP listener's id here too: that goes to the LVS side.
      if (lvs && !lbs.get(req.lbId) && (await lvs.has(req.lbId))) return { ...(await lvs.control(req.lbId, action)), version: 0n };
      const r = await lbs.control(req.lbId, action, {
        ...guard(req.expectedVersion, req.expectedMd5),
        force: req.force,
        stopTimeoutMs: req.stopTimeoutMs || undefined,
      });
      return { message: r.message, details: r.details, version: BigInt(r.version), method: method(r.apply), reason: r.apply?.reason ?? "" };
    },
    async deleteLoadBalancer(req) {
      // Octavia sends the listener id of a UDP listener here, the load
      // balancer id otherwise: remove whichever exists (both idempotent).
      const r = await lbs.delete(req.lbId);
      let udp = false;
      if (lvs) {
        udp = (await lvs.list()).includes(req.lbId.toLowerCase());
        await lvs.delete(req.lbId);
      }
      return { message: "OK", details: r.existed || udp ? "" : "no such load balancer" };
    },
    async listListeners() {
      const listeners = await lbs.listListeners();
      // Stored UDP listeners never run here: nothing starts keepalived LVS
      // (and this kernel has no IPVS), so they are STOPPED.
      for (const uuid of lvs ? await lvs.list() : []) listeners.push({ uuid, type: "UDP", status: "STOPPED", lbId: "" });
      return { listeners };
    },
    async listLoadBalancers() {
      return { loadBalancers: (await lbs.listStatus()).map(statusMsg) };
    },
    async getLoadBalancerStatus(req) {
      return { status: statusMsg(await lbs.status(req.lbId)) };
    },
  };
}
