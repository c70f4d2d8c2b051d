// Sends the health heartbeat to every controller address every
// heartbeat_interval seconds. Reads targets, interval and key from the
// ConfigStore at each send and reschedules on a "change", so an update of
// the agent config takes effect without a restart.
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import type { Logger } from "../log.js";
import type { ConfigStore } from "../config/config-store.js";
import type { StatsCollector } from "../stats/collector.js";
import { DeltaTracker } from "../stats/deltas.js";
import { buildHeartbeat, encodeHeartbeat } from "./message.js";

export interface HeartbeatSenderOptions {
  config: ConfigStore;
  collector: StatsCollector;
  logger: Logger;
  /** Called once per datagram (metrics). */
  onSend?: (outcome: "ok" | "error") => void;
}

export class HeartbeatSender {
  /** Sequence number of the last heartbeat sent (0: none yet). */
  seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private sockets: { udp4?: Socket; udp6?: Socket } = {};
  // Objects first seen after the sender started count in full: all their
  // traffic is new. Those present at start are primed (see start()).
  private readonly tracker = new DeltaTracker("totals");
  private running = false;
  private sending: Promise<void> | undefined;
  private readonly onChange = () => this.reschedule();

  constructor(private readonly o: HeartbeatSenderOptions) {}

  /** Resolves once the baseline is taken (traffic after it is reported). */
  ready: Promise<void> = Promise.resolve();

  /** Takes a baseline of what runs now, so the first heartbeat holds only new traffic. */
  start(): Promise<void> {
    if (this.running) return this.ready;
    return (this.ready = this.doStart());
  }

  private async doStart(): Promise<void> {
    this.running = true;
    this.o.config.on("change", this.onChange);
    try {
      // Stopped ones too: their listeners' totals are kept while stopped.
      const refs = this.o.collector.select();
      this.tracker.prime((await this.o.collector.collectMany(refs)).map((c) => c.stats));
    } catch (e) {
      this.o.logger.warn({ err: (e as Error).message }, "heartbeat baseline failed");
    }
    if (this.running) this.reschedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.o.config.off("change", this.onChange);
    clearTimeout(this.timer);
    await this.sending;
    for (const s of Object.values(this.sockets)) s?.close();
    this.sockets = {};
  }

  private reschedule(): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    const ms = Math.max(1, this.o.config.current.heartbeatIntervalS) * 1000;
    this.timer = setTimeout(() => {
      this.sending = this.sendOnce()
        .then(() => undefined, (e) => this.o.logger.error({ err: (e as Error).message }, "heartbeat failed"))
        .finally(() => {
          this.sending = undefined;
          this.reschedule();
        });
    }, ms);
    this.timer.unref();
  }

  private socket(host: string): Socket {
    const kind = isIPv6(host) ? "udp6" : "udp4";
    let s = this.sockets[kind];
    if (!s) {
      s = createSocket(kind);
      s.on("error", (e) => this.o.logger.warn({ err: e.message }, "heartbeat socket error"));
      s.unref();
      this.sockets[kind] = s;
    }
    return s;
  }

  /** One heartbeat to every target now. Returns the datagram sent (undefined if no target). */
  async sendOnce(): Promise<Buffer | undefined> {
    const cfg = this.o.config.current;
    if (!cfg.heartbeatTargets.length) return undefined;
    const refs = this.o.collector.select();
    const stats = this.tracker.apply((await this.o.collector.collectMany(refs)).map((c) => c.stats));
    const msg = buildHeartbeat(cfg.amphoraId, ++this.seq, stats);
    const datagram = encodeHeartbeat(msg, cfg.heartbeatKey);
    await Promise.all(cfg.heartbeatTargets.map((t) => new Promise<void>((resolve) => {
      this.socket(t.host).send(datagram, t.port, t.host, (err) => {
        if (err) this.o.logger.warn({ target: `${t.host}:${t.port}`, err: err.message }, "heartbeat send failed");
        this.o.onSend?.(err ? "error" : "ok");
        resolve();
      });
    })));
    return datagram;
  }
}
