// What the agent holds in memory about one load balancer, shared by the
// manager (which changes it under the load balancer's lock), the supervisor
// and the status reads.
import type { ListenerFact } from "./config-facts.js";
import type { LbPaths } from "./layout.js";
import type { LbMeta } from "./meta.js";
import type { MasterIdentity } from "./masters.js";
import type { ShowProc } from "./show-proc.js";

export interface Lb {
  id: string;
  paths: LbPaths;
  meta: LbMeta;
  listeners: ListenerFact[];
  /** The haproxy master the agent started or adopted (see masters.ts); set exactly while `running`. */
  master?: MasterIdentity;
  running: boolean;
  /** Set when the master runs but cannot be controlled (CLI silent). */
  error?: string;
  /** Actions (start/reload/stop) under way: the master may be re-executing. */
  busy: number;
  /** Frontend states of the last successful read (listener statuses during a reload). */
  frontends?: Map<string, string>;
  /** The last `show proc` answer of status() (status during a reload). */
  proc?: ShowProc;
}

/** Records which master runs (or none): `running` follows it. */
export function setMaster(lb: Lb, m: MasterIdentity | undefined): void {
  lb.master = m;
  lb.running = m !== undefined;
  if (!m) lb.error = undefined;
}

/** "1 s", "0.25 s", "30 s". */
export function seconds(ms: number): string {
  return `${Math.round(ms / 10) / 100} s`;
}
