// EventService: WatchEvents reads the agent's event log (src/events). Pure
// mapping between the log's plain events and the contract's messages; the
// resume, lag and eviction rules live in the log.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ApplyMethod, ConfigTarget, EventKind, EventSchema, EventService, PlugKind, RestartCause, VrrpState,
  type Event, type WatchEventsResponse,
} from "../gen/amphora/v1/events_pb.js";
import type { EventLog } from "../events/event-log.js";
import type { AgentEvent, EventKind as Kind, PublishedEvent } from "../events/model.js";

export const KIND: Record<Kind, EventKind> = {
  config_stored: EventKind.CONFIG_STORED,
  config_rejected: EventKind.CONFIG_REJECTED,
  config_applied: EventKind.CONFIG_APPLIED,
  reload_failed: EventKind.RELOAD_FAILED,
  haproxy_exited: EventKind.HAPROXY_EXITED,
  haproxy_restarted: EventKind.HAPROXY_RESTARTED,
  haproxy_stopped: EventKind.HAPROXY_STOPPED,
  load_balancer_deleted: EventKind.LOAD_BALANCER_DELETED,
  lingering_workers: EventKind.LINGERING_WORKERS,
  vrrp_state_changed: EventKind.VRRP_STATE_CHANGED,
  interface_plugged: EventKind.INTERFACE_PLUGGED,
  agent_certificate_rotated: EventKind.AGENT_CERTIFICATE_ROTATED,
  agent_config_changed: EventKind.AGENT_CONFIG_CHANGED,
};

const KIND_BACK = new Map<EventKind, Kind>(Object.entries(KIND).map(([k, v]) => [v, k as Kind]));

const TARGET = { haproxy: ConfigTarget.HAPROXY, keepalived: ConfigTarget.KEEPALIVED } as const;
const METHOD = { reload: ApplyMethod.RELOAD, runtime: ApplyMethod.RUNTIME, start: ApplyMethod.START } as const;
const VRRP = { MASTER: VrrpState.MASTER, BACKUP: VrrpState.BACKUP, FAULT: VrrpState.FAULT, STOP: VrrpState.STOP } as const;

function payload(e: AgentEvent): Event["payload"] {
  switch (e.kind) {
    case "config_stored":
      return { case: "configStored", value: { $typeName: "amphora.v1.ConfigStored", target: TARGET[e.target], lbId: e.lbId, version: BigInt(e.version), md5: e.md5 } };
    case "config_rejected":
      return { case: "configRejected", value: { $typeName: "amphora.v1.ConfigRejected", target: TARGET[e.target], lbId: e.lbId, reason: e.reason, details: e.details, code: e.code } };
    case "config_applied":
      return {
        case: "configApplied",
        value: { $typeName: "amphora.v1.ConfigApplied", lbId: e.lbId, version: BigInt(e.version), md5: e.md5, method: METHOD[e.method], reason: e.reason },
      };
    case "reload_failed":
      return {
        case: "reloadFailed",
        value: {
          $typeName: "amphora.v1.ReloadFailed", lbId: e.lbId, failedVersion: BigInt(e.failedVersion), reason: e.reason,
          rolledBack: e.rolledBack, restoredVersion: BigInt(e.restoredVersion), storedVersion: BigInt(e.storedVersion),
        },
      };
    case "haproxy_exited":
      return { case: "haproxyExited", value: { $typeName: "amphora.v1.HaproxyExited", lbId: e.lbId, restartInMs: e.restartInMs, restartPlanned: e.restartPlanned } };
    case "haproxy_restarted":
      return {
        case: "haproxyRestarted",
        value: {
          $typeName: "amphora.v1.HaproxyRestarted", lbId: e.lbId, version: BigInt(e.version),
          cause: e.cause === "exited" ? RestartCause.EXITED : RestartCause.AGENT_START, restarts: e.restarts,
        },
      };
    case "haproxy_stopped":
      return { case: "haproxyStopped", value: { $typeName: "amphora.v1.HaproxyStopped", lbId: e.lbId, deleted: e.deleted } };
    case "load_balancer_deleted":
      return { case: "loadBalancerDeleted", value: { $typeName: "amphora.v1.LoadBalancerDeleted", lbId: e.lbId } };
    case "lingering_workers":
      return {
        case: "lingeringWorkers",
        value: { $typeName: "amphora.v1.LingeringWorkers", lbId: e.lbId, count: e.count, oldestSeconds: BigInt(e.oldestSeconds), pids: e.pids },
      };
    case "vrrp_state_changed":
      return {
        case: "vrrpStateChanged",
        value: { $typeName: "amphora.v1.VrrpStateChanged", instance: e.instance, group: e.group, state: VRRP[e.state], priority: e.priority },
      };
    case "interface_plugged":
      return {
        case: "interfacePlugged",
        value: {
          $typeName: "amphora.v1.InterfacePlugged", kind: e.plug === "vip" ? PlugKind.VIP : PlugKind.NETWORK,
          interface: e.iface, macAddress: e.macAddress, addresses: e.addresses,
        },
      };
    case "agent_certificate_rotated":
      return { case: "agentCertificateRotated", value: { $typeName: "amphora.v1.AgentCertificateRotated", subject: e.subject, notAfter: e.notAfter } };
    case "agent_config_changed":
      return { case: "agentConfigChanged", value: { $typeName: "amphora.v1.AgentConfigChanged", applied: e.applied, restartNeeded: e.restartNeeded } };
  }
}

export function eventToProto(p: PublishedEvent): Event {
  return create(EventSchema, {
    seq: BigInt(p.seq),
    epoch: p.epoch,
    time: timestampFromDate(p.time),
    kind: KIND[p.event.kind],
    lbId: "lbId" in p.event ? p.event.lbId : "",
    summary: p.summary,
    payload: payload(p.event),
  });
}

export function eventService(log: EventLog, keepaliveMs: () => number): Partial<ServiceImpl<typeof EventService>> {
  return {
    async *watchEvents(req, ctx): AsyncGenerator<WatchEventsResponse> {
      // A call can start already aborted (a deadline of 0 ms): its signal
      // will never fire "abort", so end it now with its reason.
      ctx.signal.throwIfAborted();
      // Checked before anything is sent: a resume point that cannot be
      // served is an error, not an empty stream.
      const sub = log.subscribe({
        sinceSeq: req.sinceSeq === undefined ? undefined : Number(req.sinceSeq),
        epoch: req.epoch,
        filter: {
          kinds: req.filter?.kinds.map((k) => KIND_BACK.get(k)!).filter(Boolean),
          lbIds: req.filter?.lbIds,
        },
        keepaliveMs: keepaliveMs(),
      });
      const onAbort = () => sub.close();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        yield {
          $typeName: "amphora.v1.WatchEventsResponse",
          message: {
            case: "start",
            value: {
              $typeName: "amphora.v1.EventStreamStart",
              epoch: log.epoch, headSeq: BigInt(log.headSeq), oldestSeq: BigInt(log.oldestSeq), ringSize: log.size,
            },
          },
        };
        // One message at a time: the next is taken from the ring only when
        // the transport asks for it, so a slow reader holds only its cursor.
        for (;;) {
          const item = await sub.next();
          if (!item) return;
          if (item.type === "event") {
            yield { $typeName: "amphora.v1.WatchEventsResponse", message: { case: "event", value: eventToProto(item.event) } };
          } else {
            yield {
              $typeName: "amphora.v1.WatchEventsResponse",
              message: { case: "keepalive", value: { $typeName: "amphora.v1.EventKeepalive", epoch: log.epoch, seq: BigInt(item.seq) } },
            };
          }
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        sub.close();
      }
    },
  };
}
