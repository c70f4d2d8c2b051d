// Everything a service implementation needs, passed explicitly (no globals).
import type { Logger } from "../log.js";
import type { ConfigStore } from "../config/config-store.js";
import type { TlsControl } from "../transport/tls.js";
import type { Monitoring } from "../metrics/monitoring.js";
import type { LoadBalancerManager } from "../haproxy/manager.js";
import type { CertificateStore } from "../certs/store.js";
import type { NetworkPlumbing } from "../network/plumbing.js";
import type { KeepalivedVrrp } from "../keepalived/vrrp.js";
import type { LvsListeners } from "../keepalived/lvs.js";
import type { EventLog } from "../events/event-log.js";
import type { Conditions } from "../system/conditions.js";

export interface AgentContext {
  logger: Logger;
  config: ConfigStore;
  tls: TlsControl;
  agentVersion: string;
  /** Load balancers on haproxy; also the LoadBalancerCatalog for stats/heartbeat. */
  lbs: LoadBalancerManager;
  /** Certificates of load balancers (shares the per-LB lock of `lbs`). */
  certs: CertificateStore;
  /** VIP/member port plumbing in the load-balancer namespace. */
  network: NetworkPlumbing;
  /** keepalived for VRRP, and the stored LVS configs of UDP listeners. */
  keepalived: KeepalivedVrrp;
  lvs: LvsListeners;
  /** Stats collector, WatchStats hub, heartbeat and metrics. */
  monitoring: Monitoring;
  /** What happened (WatchEvents); services publish their own events into it. */
  events: EventLog;
  /** Conditions the agent could not fix itself (e.g. a start write on a full disk): GetDetails warnings, a metric. */
  conditions: Conditions;
}
