// What other modules (stats, heartbeat, system details) may know about the
// load balancers the agent manages, without depending on how haproxy is
// driven. The haproxy module implements it.
import type { EventEmitter } from "node:events";

export interface LoadBalancerRef {
  lbId: string;
  /** The master CLI socket (reaches the workers with "@1 ..."). */
  masterSocket: string;
  running: boolean;
  /** Listener ids (frontend names) of the stored config. */
  listenerIds: string[];
}

export type LoadBalancerEvent =
  | { type: "created" | "started" | "stopped" | "deleted"; lbId: string }
  /** A reload succeeded: counters of the new worker restart at zero. */
  | { type: "reloaded"; lbId: string }
  /** A reload failed; the old worker still serves. */
  | { type: "reload_failed"; lbId: string };

export interface LoadBalancerCatalog extends EventEmitter<{ event: [LoadBalancerEvent] }> {
  list(): LoadBalancerRef[];
  get(lbId: string): LoadBalancerRef | undefined;
}
