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

// The optional fields say what happened in more detail (WatchEvents reads
// them, src/events/sources.ts); listeners that only need the type ignore them.
export type LoadBalancerEvent =
  | { type: "created" | "deleted"; lbId: string }
  | {
    type: "started"; lbId: string;
    /** The config version it started with. */
    version?: number;
    md5?: string;
    /** "start": asked for; "restart": it had exited on its own; "resume": at agent start. */
    cause?: "start" | "restart" | "resume";
    /** Automatic restarts so far. */
    restarts?: number;
  }
  | {
    type: "stopped"; lbId: string;
    /** "stop": asked for; "exited": on its own; "delete": with the load balancer. */
    cause?: "stop" | "exited" | "delete";
    /** cause "exited": the supervisor starts it again after this delay (undefined: no restart). */
    restartInMs?: number;
  }
  /** A reload succeeded: counters of the new worker restart at zero. */
  | {
    type: "reloaded"; lbId: string; version?: number; md5?: string;
    /** How the config was applied (default "reload"; issue 13 part 1 adds "runtime"). */
    method?: "reload" | "runtime";
    /** Why this method (e.g. the first difference that needed a reload). */
    reason?: string;
  }
  /** A reload failed; the old worker still serves. */
  | {
    type: "reload_failed"; lbId: string;
    /** The version that failed to load. */
    version?: number;
    reason?: string;
    /** The stored config was rolled back: the last good version, stored again as `storedVersion`. */
    rolledBack?: { restoredVersion: number; storedVersion: number };
  };

export interface LoadBalancerCatalog extends EventEmitter<{ event: [LoadBalancerEvent] }> {
  list(): LoadBalancerRef[];
  get(lbId: string): LoadBalancerRef | undefined;
  /**
   * Ids the controller wants running: started and not stopped since (a
   * haproxy that died, or failed to start again, stays wanted). The
   * keepalived check follows it. Optional: catalogs that keep no wanted
   * state (test stand-ins) omit it.
   */
  wantedRunning?(): string[];
}
