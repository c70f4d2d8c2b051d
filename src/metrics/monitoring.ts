// Everything that watches the load balancers, assembled once per agent:
// the stats collector (monotonic totals), the WatchStats hub (shared polls),
// the heartbeat sender and the Prometheus metrics fed by all three.
import type { Logger } from "../log.js";
import type { ConfigStore } from "../config/config-store.js";
import type { LoadBalancerCatalog } from "../haproxy/catalog.js";
import { StatsCollector } from "../stats/collector.js";
import { WatchHub } from "../stats/watch-hub.js";
import { DeltaTracker } from "../stats/deltas.js";
import { ByteBudget } from "../stats/byte-budget.js";
import { HeartbeatSender } from "../heartbeat/sender.js";
import { AgentMetrics } from "./agent-metrics.js";
import type { Conditions } from "../system/conditions.js";
import { metricsFallback, type HttpFallback } from "./http.js";

export interface Monitoring {
  collector: StatsCollector;
  hub: WatchHub;
  heartbeat: HeartbeatSender;
  metrics: AgentMetrics;
  /** GET /metrics; put it before other fallbacks. */
  fallback: HttpFallback;
  /** Deltas of GetStats: since the previous GetStats call. */
  getStatsDeltas: DeltaTracker;
  /** Silence after which a WatchStats stream gets an empty keepalive message. */
  keepaliveMs(): number;
  /** Bytes of WatchStats messages in flight across all streams. */
  streamBudget: ByteBudget;
  stop(): Promise<void>;
}

export function startMonitoring(o: { catalog: LoadBalancerCatalog; config: ConfigStore; logger: Logger; conditions?: Conditions }): Monitoring {
  const metrics = new AgentMetrics();
  // 1 while the agent runs on its last good configuration because the configuration file could not start it.
  metrics.configFallback.set(o.config.fallback ? 1 : 0);
  const collector = new StatsCollector({ catalog: o.catalog, logger: o.logger });
  const hub = new WatchHub(collector, o.logger);
  const heartbeat = new HeartbeatSender({
    config: o.config,
    collector,
    logger: o.logger,
    onSend: (outcome) => metrics.heartbeats.inc({ outcome }),
  });
  // 16 MB: ~23 full snapshots of a 10,000-member load balancer at once.
  // More in flight only shares the same bandwidth among more streams:
  // every message takes longer and is staler when it arrives.
  const streamBudget = new ByteBudget(16 << 20);
  metrics.attach({ collector, hub, budget: streamBudget, conditions: o.conditions });
  const onEvent = (e: { type: string }) => {
    metrics.lbEvents.inc({ type: e.type });
    if (e.type === "reloaded") metrics.reloads.inc({ outcome: "ok" });
    else if (e.type === "reload_failed") metrics.reloads.inc({ outcome: "failed" });
  };
  o.catalog.on("event", onEvent);
  // The baseline poll runs in the background; sends start one interval later.
  void heartbeat.start();
  return {
    collector, hub, heartbeat, metrics,
    fallback: metricsFallback(metrics),
    getStatsDeltas: new DeltaTracker("zero"),
    streamBudget,
    // Well inside the server's inactivity timeout (request read timeout).
    keepaliveMs: () => Math.max(200, Math.min(15_000, Math.floor((o.config.current.requestReadTimeoutS * 1000) / 3))),
    async stop() {
      o.catalog.off("event", onEvent);
      await heartbeat.stop();
      hub.close();
      collector.close();
    },
  };
}
