// `amphora watch`: follows WatchStats (reconnecting when the agent
// restarts). On a terminal it redraws one table per update; otherwise it
// prints plain lines (or one JSON object per update with --json), so it can
// be piped into grep or a log.
import { followStats, WatchMode, WatchStatsResponseSchema, type WatchStatsResponse } from "../driver/index.js";
import { clipToWidth, messageJson, paint } from "./output.js";
import { RateTracker, renderStats, statsLines } from "./stats-view.js";
import type { RunContext } from "./command.js";

export interface WatchOptions {
  lbIds: string[];
  listenerIds: string[];
  intervalMs: number;
  /** Stop after this many updates. */
  count?: number;
}

const CLEAR = "\x1b[H\x1b[2J";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

function timeOf(msg: WatchStatsResponse): { at: number; iso: string } {
  const ts = msg.collectedAt;
  const at = ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : Date.now();
  return { at, iso: new Date(at).toISOString() };
}

export async function runWatch(ctx: RunContext<unknown>, o: WatchOptions): Promise<void> {
  const live = !ctx.json && ctx.stdout.isTTY === true;
  const tracker = new RateTracker();
  let updates = 0;
  let status = "";
  const ac = new AbortController();
  const stop = () => ac.abort();
  ctx.signal.addEventListener("abort", stop, { once: true });
  if (live) ctx.stdout.write(HIDE_CURSOR);
  try {
    for await (const msg of followStats(ctx.client, {
      lbIds: o.lbIds,
      listenerIds: o.listenerIds,
      intervalMs: o.intervalMs,
      // Full snapshots: every update can be drawn on its own, and rates come
      // from consecutive totals.
      mode: WatchMode.SNAPSHOTS,
      signal: ac.signal,
      onReconnect: ({ attempt, delayMs, error }) => {
        status = `reconnecting (attempt ${attempt}, in ${delayMs} ms): ${error.rawMessage}`;
        if (live) ctx.stdout.write(`\r${paint(status, "yellow", ctx.style)}\x1b[K`);
        else ctx.stderr.write(`${new Date().toISOString()} ${status}\n`);
      },
    })) {
      status = "";
      tracker.epoch(msg.totalsSince);
      const { at, iso } = timeOf(msg);
      if (ctx.json) {
        ctx.stdout.write(JSON.stringify(messageJson(WatchStatsResponseSchema, msg)) + "\n");
      } else if (live) {
        const head = `${paint("amphora watch", "bold", ctx.style)}  ${ctx.client.baseUrl}  every ${o.intervalMs} ms  ${iso}` +
          (msg.missedUpdates ? paint(`  (missed ${msg.missedUpdates} updates)`, "yellow", ctx.style) : "");
        let body = renderStats(msg.loadBalancers, ctx.style, { tracker, at }).trimEnd().split("\n");
        // Taller than the terminal would scroll on every redraw: cut it.
        const room = (ctx.stdout.rows ?? 0) - 4;
        if (room > 0 && body.length > room) {
          const more = body.length - room + 1;
          body = [...body.slice(0, room - 1), paint(`... ${more} more lines (narrow it with --lb/--listener)`, "dim", ctx.style)];
        }
        // Wider than the terminal would wrap: cut each line instead.
        const cols = ctx.stdout.columns ?? 0;
        const lines = [head, "", ...body, "", "Ctrl-C to quit"].map((l) => clipToWidth(l, cols));
        ctx.stdout.write(CLEAR + lines.join("\n") + "\n");
      } else {
        const lines = statsLines(msg.loadBalancers, iso, tracker, at);
        ctx.stdout.write((lines.length ? lines.join("\n") : `${iso} no load balancers`) + "\n");
      }
      tracker.commit();
      updates++;
      if (o.count !== undefined && updates >= o.count) break;
    }
  } finally {
    ac.abort();
    ctx.signal.removeEventListener("abort", stop);
    if (live) ctx.stdout.write(SHOW_CURSOR);
  }
}
