// What the agent reports as having happened (WatchEvents), as plain data:
// one variant per kind, each with what a controller needs to act on it
// without asking again. No RPC types here: src/services maps these to
// the contract's messages.

export type ConfigTarget = "haproxy" | "keepalived";
/** How a stored config became the served one. Part 1 of issue 13 (reload-free apply) adds "runtime". */
export type ApplyMethod = "reload" | "runtime" | "start";
export type VrrpState = "MASTER" | "BACKUP" | "FAULT" | "STOP";

export type AgentEvent =
  | { kind: "config_stored"; target: ConfigTarget; lbId: string; version: number; md5: string }
  | { kind: "config_rejected"; target: ConfigTarget; lbId: string; reason: string; details: string; code: string }
  | { kind: "config_applied"; lbId: string; version: number; md5: string; method: ApplyMethod; reason: string }
  | {
    kind: "reload_failed"; lbId: string; failedVersion: number; reason: string;
    rolledBack: boolean; restoredVersion: number; storedVersion: number;
  }
  | { kind: "haproxy_exited"; lbId: string; restartPlanned: boolean; restartInMs: number }
  | { kind: "haproxy_restarted"; lbId: string; version: number; cause: "exited" | "agent_start"; restarts: number }
  | { kind: "haproxy_stopped"; lbId: string; deleted: boolean }
  | { kind: "load_balancer_deleted"; lbId: string }
  | { kind: "lingering_workers"; lbId: string; count: number; oldestSeconds: number; pids: number[] }
  | { kind: "vrrp_state_changed"; instance: string; group: boolean; state: VrrpState; priority: number }
  | { kind: "interface_plugged"; plug: "vip" | "network"; iface: string; macAddress: string; addresses: string[] }
  | { kind: "agent_certificate_rotated"; subject: string; notAfter: string }
  | { kind: "agent_config_changed"; applied: string[]; restartNeeded: string[] };

export type EventKind = AgentEvent["kind"];

export const EVENT_KINDS: readonly EventKind[] = [
  "config_stored", "config_rejected", "config_applied", "reload_failed", "haproxy_exited", "haproxy_restarted",
  "haproxy_stopped", "load_balancer_deleted", "lingering_workers", "vrrp_state_changed", "interface_plugged",
  "agent_certificate_rotated", "agent_config_changed",
];

/** An event as published: numbered within the agent process's epoch. */
export interface PublishedEvent {
  seq: number;
  epoch: string;
  time: Date;
  event: AgentEvent;
  /** One line for people. */
  summary: string;
}

/** The load balancer an event is about ("" for agent-wide events). */
export function lbIdOf(e: AgentEvent): string {
  return "lbId" in e ? e.lbId : "";
}

export function summarize(e: AgentEvent): string {
  const lb = (id: string) => (id ? `load balancer ${id}` : "keepalived");
  switch (e.kind) {
    case "config_stored":
      return e.target === "haproxy" ? `${lb(e.lbId)}: config version ${e.version} stored (md5 ${e.md5})` : `keepalived: VRRP config stored (md5 ${e.md5})`;
    case "config_rejected":
      return `${e.target === "haproxy" ? lb(e.lbId) : "keepalived"}: config rejected: ${e.reason}`;
    case "config_applied":
      return `${lb(e.lbId)}: config version ${e.version} applied (${e.method})${e.reason ? `: ${e.reason}` : ""}`;
    case "reload_failed":
      return `${lb(e.lbId)}: reload of version ${e.failedVersion} failed${e.rolledBack ? `; rolled back to version ${e.restoredVersion} (stored as ${e.storedVersion})` : ""}`;
    case "haproxy_exited":
      return `${lb(e.lbId)}: haproxy exited without a stop request${e.restartPlanned ? `; restarting it in ${e.restartInMs} ms` : ""}`;
    case "haproxy_restarted":
      return `${lb(e.lbId)}: haproxy started again by the agent (${e.cause === "exited" ? `after it exited, restart ${e.restarts}` : "at agent start"}) with config version ${e.version}`;
    case "haproxy_stopped":
      return `${lb(e.lbId)}: haproxy stopped${e.deleted ? " (deleted)" : ""}`;
    case "load_balancer_deleted":
      return `${lb(e.lbId)}: deleted`;
    case "lingering_workers":
      return e.count ? `${lb(e.lbId)}: ${e.count} old worker(s) still running, oldest ${e.oldestSeconds} s` : `${lb(e.lbId)}: old workers gone`;
    case "vrrp_state_changed":
      return `VRRP ${e.group ? "group" : "instance"} ${e.instance}: ${e.state} (priority ${e.priority})`;
    case "interface_plugged":
      return `${e.plug === "vip" ? "VIP" : "network"} plugged on ${e.iface} (${e.macAddress}${e.addresses.length ? ` ${e.addresses.join(", ")}` : ""})`;
    case "agent_certificate_rotated":
      return `agent certificate rotated: ${e.subject} until ${e.notAfter}`;
    case "agent_config_changed":
      return `agent configuration replaced${e.applied.length ? `; applied: ${e.applied.join(", ")}` : ""}${e.restartNeeded.length ? `; after a restart: ${e.restartNeeded.join(", ")}` : ""}`;
  }
}
