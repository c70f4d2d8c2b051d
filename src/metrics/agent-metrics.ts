// The agent's Prometheus metrics, in a registry of its own (several agents
// in one test process must not share counters). Per-object gauges are read
// at scrape time from the stats collector's latest poll.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { StatsCollector } from "../stats/collector.js";
import type { WatchHub } from "../stats/watch-hub.js";
import type { LoadBalancerStats } from "../stats/model.js";
import type { ByteBudget } from "../stats/byte-budget.js";
import type { EventLog } from "../events/event-log.js";
import type { Conditions } from "../system/conditions.js";

export interface MetricsSources {
  collector?: StatsCollector;
  /** Conditions the agent runs with but could not fix (full disk at start...). */
  conditions?: Conditions;
  hub?: WatchHub;
  budget?: ByteBudget;
  /** WatchEvents' log: events published, open streams. */
  events?: EventLog;
  /** A scrape polls a load balancer whose latest stats are older than this. */
  maxStatsAgeMs?: number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly configFallback: Gauge;
  readonly rpcs: Counter<"method" | "code">;
  readonly rpcSeconds: Histogram<"method">;
  /** REST requests refused before they became calls (so they are not in amphora_rpc_total). */
  readonly restRejected: Counter<"status">;
  /** haproxy reloads by outcome ("ok", "failed"), from the catalog's events. */
  readonly reloads: Counter<"outcome">;
  /** haproxy config validations by outcome (valid/invalid/error, from PutConfig results). */
  readonly configValidations: Counter<"outcome">;
  readonly lbEvents: Counter<"type">;
  readonly heartbeats: Counter<"outcome">;
  private sources: MetricsSources = {};

  constructor() {
    const r = [this.registry];
    this.rpcs = new Counter({ name: "amphora_rpc_total", help: "RPCs served, by method and result code", labelNames: ["method", "code"], registers: r });
    this.rpcSeconds = new Histogram({
      name: "amphora_rpc_duration_seconds", help: "RPC duration (streams: until they end)", labelNames: ["method"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300], registers: r,
    });
    this.restRejected = new Counter({
      name: "amphora_rest_rejected_total", help: "REST requests refused before reaching an RPC (wrong method, too large, unusable input), by HTTP status",
      labelNames: ["status"], registers: r,
    });
    this.reloads = new Counter({ name: "amphora_haproxy_reloads_total", help: "haproxy reloads by outcome", labelNames: ["outcome"], registers: r });
    this.configValidations = new Counter({ name: "amphora_haproxy_config_validations_total", help: "haproxy config validations by outcome", labelNames: ["outcome"], registers: r });
    this.lbEvents = new Counter({ name: "amphora_lb_events_total", help: "Load balancer lifecycle events", labelNames: ["type"], registers: r });
    this.heartbeats = new Counter({ name: "amphora_heartbeat_sends_total", help: "Heartbeat datagrams sent, by outcome", labelNames: ["outcome"], registers: r });
    const self = this;
    this.configFallback = new Gauge({
      name: "amphora_agent_config_fallback",
      help: "1 when the configuration file could not start the agent and it runs on the last configuration that did",
      registers: r,
    });
    new Gauge({
      name: "amphora_stats_subscribers", help: "Open WatchStats streams", registers: r,
      collect() { this.set(self.sources.hub?.subscriberCount ?? 0); },
    });
    new Gauge({
      name: "amphora_stats_poll_groups", help: "Poll groups (one per distinct WatchStats interval)", registers: r,
      collect() { this.set(self.sources.hub?.groupCount ?? 0); },
    });
    new Gauge({
      name: "amphora_stats_stream_bytes_in_flight", help: "Bytes of WatchStats messages being written (capped)", registers: r,
      collect() { this.set(self.sources.budget?.inFlight ?? 0); },
    });
    new Counter({
      name: "amphora_events_published_total", help: "Events published for WatchEvents, by kind", labelNames: ["kind"], registers: r,
      collect() {
        this.reset();
        for (const [kind, n] of self.sources.events?.published ?? []) this.inc({ kind }, n);
      },
    });
    new Gauge({
      name: "amphora_event_subscribers", help: "Open WatchEvents streams", registers: r,
      collect() { this.set(self.sources.events?.subscriberCount ?? 0); },
    });
    new Counter({
      name: "amphora_event_streams_ended_total",
      help: "WatchEvents streams ended because the reader fell behind (SLOW_CONSUMER) or its next event was evicted (EVENTS_EVICTED)",
      labelNames: ["reason"], registers: r,
      collect() {
        this.reset();
        for (const [reason, n] of self.sources.events?.ended ?? []) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: "amphora_stats_polls_total", help: "haproxy stats polls (show info + show stat of one load balancer)", registers: r,
      collect() { this.reset(); this.inc(self.sources.collector?.polls ?? 0); },
    });
    new Counter({
      name: "amphora_stats_poll_errors_total", help: "haproxy stats polls that failed", registers: r,
      collect() { this.reset(); this.inc(self.sources.collector?.pollErrors ?? 0); },
    });
    new Gauge({
      name: "amphora_agent_conditions", help: "Conditions the agent runs with but could not fix itself (e.g. start_write_failed on a full disk), by kind; details in GetDetails warnings",
      labelNames: ["kind"], registers: r,
      collect() {
        this.reset();
        // The kinds the agent knows stay visible at 0, so an alert can watch them before they happen.
        this.set({ kind: "start_write_failed" }, 0);
        this.set({ kind: "plug_not_restored" }, 0);
        for (const [kind, n] of self.sources.conditions?.countsByKind() ?? []) this.set({ kind }, n);
      },
    });
    this.objectMetrics(r);
  }

  /** Connects the live sources once they exist. */
  attach(s: MetricsSources): void {
    this.sources = { ...this.sources, ...s };
  }

  /** For the REST handler's onReject. */
  readonly observeRestReject = (status: number): void => {
    this.restRejected.inc({ status: String(status) });
  };

  /** For loggingInterceptor(logger, observe). */
  readonly observeCall = (method: string, code: string, seconds: number): void => {
    this.rpcs.inc({ method, code });
    this.rpcSeconds.observe({ method }, seconds);
    // Every config upload (Connect or REST) is validated with `haproxy -c`
    // before it is stored: its outcome is the validation's.
    if (method === "amphora.v1.LoadBalancerService/PutConfig") {
      this.configValidations.inc({ outcome: code === "OK" ? "valid" : code === "InvalidArgument" ? "invalid" : "error" });
    }
  };

  private async currentStats(): Promise<LoadBalancerStats[]> {
    const c = this.sources.collector;
    if (!c) return [];
    const maxAge = this.sources.maxStatsAgeMs ?? 5000;
    const now = Date.now();
    return Promise.all(c.select().map(async (ref) => {
      const l = c.latest(ref.lbId);
      // Reuse the shared poller's latest result; poll only if it is stale.
      if (l && now - l.collectedAt.getTime() <= maxAge && l.stats.running === ref.running) return l.stats;
      return (await c.collect(ref)).stats;
    }));
  }

  private objectMetrics(r: Registry[]): void {
    const self = this;
    const lbL = ["lb_id"] as const;
    const lsL = ["lb_id", "listener_id"] as const;
    const plL = ["lb_id", "pool_id", "listener_id"] as const;
    const mbL = ["lb_id", "pool_id", "member_id"] as const;
    // The registry reads all metrics concurrently: every per-object gauge
    // waits for the one fill of this scrape (shared in-flight promise).
    let filling: Promise<void> | undefined;
    const fill = () => (filling ??= fillAll().finally(() => (filling = undefined)));
    const g = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Gauge<L>({ name, help, labelNames, registers: r, collect: fill });
    const lbUp = g("amphora_lb_running", "1 when haproxy of the load balancer runs", lbL);
    const lbReloads = g("amphora_lb_reloads_seen", "haproxy reloads the agent carried counters across", lbL);
    const lsUp = g("amphora_listener_open", "1 when the listener (frontend) is OPEN", lsL);
    const lsCur = g("amphora_listener_sessions_current", "Current sessions", lsL);
    const lsTot = g("amphora_listener_sessions", "Sessions since the agent first saw the listener (monotonic)", lsL);
    const lsIn = g("amphora_listener_bytes_in", "Bytes received (monotonic)", lsL);
    const lsOut = g("amphora_listener_bytes_out", "Bytes sent (monotonic)", lsL);
    const lsReq = g("amphora_listener_requests", "HTTP requests (monotonic)", lsL);
    const lsErr = g("amphora_listener_request_errors", "Request errors (monotonic)", lsL);
    const plUp = g("amphora_pool_up", "1 when the pool (backend) is UP", plL);
    const plCur = g("amphora_pool_sessions_current", "Current sessions", plL);
    const mbState = new Gauge({
      name: "amphora_member_status", help: "1 for the member's current status", labelNames: [...mbL, "status"], registers: r, collect: fill,
    });
    const mbCur = g("amphora_member_sessions_current", "Current sessions", mbL);
    const mbTot = g("amphora_member_sessions", "Sessions (monotonic)", mbL);
    const mbIn = g("amphora_member_bytes_in", "Bytes received (monotonic)", mbL);
    const mbOut = g("amphora_member_bytes_out", "Bytes sent (monotonic)", mbL);
    const mbFail = g("amphora_member_check_failures", "Failed health checks", mbL);
    const all = [lbUp, lbReloads, lsUp, lsCur, lsTot, lsIn, lsOut, lsReq, lsErr, plUp, plCur, mbState, mbCur, mbTot, mbIn, mbOut, mbFail];
    const objects = new Gauge({ name: "amphora_stats_scrape_objects", help: "Listeners, pools and members exported at this scrape", registers: r, collect: fill });
    async function fillAll(): Promise<void> {
        for (const m of all) m.reset();
        const lbs = await self.currentStats();
        let n = 0;
        for (const lb of lbs) {
          const lb_id = lb.lbId;
          lbUp.set({ lb_id }, lb.running ? 1 : 0);
          lbReloads.set({ lb_id }, lb.reloads);
          for (const l of lb.listeners) {
            n++;
            const k = { lb_id, listener_id: l.listenerId };
            lsUp.set(k, l.status === "OPEN" ? 1 : 0);
            lsCur.set(k, l.currentSessions);
            if (l.totals) {
              lsTot.set(k, l.totals.totalSessions);
              lsIn.set(k, l.totals.bytesIn);
              lsOut.set(k, l.totals.bytesOut);
              lsReq.set(k, l.totals.requests);
              lsErr.set(k, l.totals.requestErrors);
            }
          }
          for (const p of lb.pools) {
            n++;
            const pk = { lb_id, pool_id: p.poolId, listener_id: p.listenerId };
            plUp.set(pk, p.status === "UP" ? 1 : 0);
            plCur.set(pk, p.currentSessions);
            for (const m of p.members) {
              n++;
              const k = { lb_id, pool_id: p.poolId, member_id: m.memberId };
              mbState.set({ ...k, status: m.status }, 1);
              mbCur.set(k, m.currentSessions);
              mbFail.set(k, m.checkFailures);
              if (m.totals) {
                mbTot.set(k, m.totals.totalSessions);
                mbIn.set(k, m.totals.bytesIn);
                mbOut.set(k, m.totals.bytesOut);
              }
            }
          }
        }
        objects.set(n);
    }
  }
}
