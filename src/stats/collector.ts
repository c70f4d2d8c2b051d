// The one place that polls haproxy for stats. Keeps the monotonic totals of
// every load balancer (shared by every consumer), shares a poll already in
// flight, counts polls, and announces what it collected so that status
// changes seen by any consumer reach every watcher at once.
import { EventEmitter } from "node:events";
import type { Logger } from "../log.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "../haproxy/catalog.js";
import { AnswerBuffer, retryWhileReexecuting } from "../haproxy/master-cli.js";
import { LbAccumulator } from "./accumulator.js";
import { readRawStats, type RawLbStats } from "./haproxy-stats.js";
import type { LoadBalancerStats, StatsFilter } from "./model.js";

export interface CollectedStats {
  stats: LoadBalancerStats;
  collectedAt: Date;
}

type Events = {
  /** After every collection (poll or stopped state). */
  collected: [CollectedStats];
  /** A catalog event, after the collector updated its own state. */
  lb: [LoadBalancerEvent];
};

export interface StatsCollectorOptions {
  catalog: LoadBalancerCatalog;
  logger: Logger;
  /**
   * Replaceable for tests; reads one poll from a master socket (into the
   * load balancer's own answer buffer: what it returns is used before the
   * next poll of that load balancer).
   */
  read?: (masterSocket: string, into: AnswerBuffer) => Promise<RawLbStats>;
}

export class StatsCollector extends EventEmitter<Events> {
  private readonly acc = new Map<string, LbAccumulator>();
  private readonly inflight = new Map<string, Promise<CollectedStats>>();
  private readonly latestByLb = new Map<string, CollectedStats>();
  private readonly pollsByLb = new Map<string, number>();
  /**
   * When this collector began counting: every total it hands out counts
   * from here (or from a load balancer's first poll after it). A restarted
   * agent has a new collector and so a new value: the epoch consumers see
   * as `totals_since` to tell a restart from zero from a counter going back.
   */
  readonly totalsSince = new Date();
  /** haproxy polls made (each is `show info` + `show stat` on one LB). */
  polls = 0;
  pollErrors = 0;
  private readonly onEvent = (e: LoadBalancerEvent) => this.handle(e);
  private readonly read: (sock: string, into: AnswerBuffer) => Promise<RawLbStats>;
  /** Per load balancer, where its show stat answers are read (see AnswerBuffer). */
  private readonly answers = new Map<string, AnswerBuffer>();

  constructor(private readonly o: StatsCollectorOptions) {
    super();
    this.setMaxListeners(0);
    this.read = o.read ?? ((s, into) => readRawStats(s, undefined, into));
    o.catalog.on("event", this.onEvent);
  }

  close(): void {
    this.o.catalog.off("event", this.onEvent);
  }

  get catalog(): LoadBalancerCatalog {
    return this.o.catalog;
  }

  pollsOf(lbId: string): number {
    return this.pollsByLb.get(lbId) ?? 0;
  }

  latest(lbId: string): CollectedStats | undefined {
    return this.latestByLb.get(lbId);
  }

  private accumulator(lbId: string): LbAccumulator {
    let a = this.acc.get(lbId);
    if (!a) this.acc.set(lbId, (a = new LbAccumulator(lbId)));
    return a;
  }

  private handle(e: LoadBalancerEvent): void {
    if (e.type === "deleted") {
      this.acc.delete(e.lbId);
      this.answers.delete(e.lbId);
      this.latestByLb.delete(e.lbId);
      this.pollsByLb.delete(e.lbId);
    }
    // The pid check in the accumulator is what carries counters; the event
    // only makes watchers poll at once (see WatchHub).
    this.emit("lb", e);
  }

  /** Load balancers a filter selects, in catalog order. */
  select(filter: StatsFilter = {}): LoadBalancerRef[] {
    const ids = filter.lbIds?.length ? new Set(filter.lbIds) : undefined;
    return this.o.catalog.list().filter((r) => !ids || ids.has(r.lbId));
  }

  /** Polls one load balancer now (or joins the poll already in flight). */
  collect(ref: LoadBalancerRef): Promise<CollectedStats> {
    const running = this.inflight.get(ref.lbId);
    if (running) return running;
    const p = this.doCollect(ref).finally(() => this.inflight.delete(ref.lbId));
    this.inflight.set(ref.lbId, p);
    return p;
  }

  collectMany(refs: LoadBalancerRef[]): Promise<CollectedStats[]> {
    return Promise.all(refs.map((r) => this.collect(r)));
  }

  private async doCollect(ref: LoadBalancerRef): Promise<CollectedStats> {
    const acc = this.accumulator(ref.lbId);
    let stats: LoadBalancerStats;
    // collected_at: when the data was read from haproxy, not when the agent
    // had finished parsing and accumulating it (5-15 ms later for 10,000
    // members): that time is part of the lag a consumer sees.
    let readAt: Date | undefined;
    if (!ref.running) stats = acc.stopped(ref.listenerIds);
    else {
      this.polls++;
      this.pollsByLb.set(ref.lbId, this.pollsOf(ref.lbId) + 1);
      try {
        // The master refuses connections for a few ms while it re-executes.
        let into = this.answers.get(ref.lbId);
        if (!into) this.answers.set(ref.lbId, (into = new AnswerBuffer()));
        const raw = await retryWhileReexecuting(() => this.read(ref.masterSocket, into));
        readAt = raw.readAt ?? new Date();
        stats = acc.apply(raw);
      } catch (e) {
        readAt = undefined;
        this.pollErrors++;
        this.o.logger.warn({ lbId: ref.lbId, err: (e as Error).message }, "stats poll failed; reporting the load balancer as not running");
        // Retries covered a master re-executing; a master that does not
        // answer now is not serving as far as anyone can tell. Totals are
        // kept (zero deltas now, nothing lost if the same worker answers later).
        stats = acc.stopped(ref.listenerIds);
      }
    }
    // The LB may have been deleted while we polled: do not resurrect it.
    const out = { stats, collectedAt: readAt ?? new Date() };
    if (this.acc.has(ref.lbId)) this.latestByLb.set(ref.lbId, out);
    this.emit("collected", out);
    return out;
  }
}
