// `amphora stats` (one snapshot) and `amphora watch` (the stream, live):
// StatsService.
import { create } from "@bufbuild/protobuf";
import { StatsFilterSchema, GetStatsResponseSchema } from "../../driver/index.js";
import type { Command, OptSpec } from "../command.js";
import { num, strs } from "../input.js";
import { messageJson } from "../output.js";
import { renderStats, totalsSinceLine } from "../stats-view.js";
import { runWatch } from "../watch.js";

const statsFilterOpts: Record<string, OptSpec> = {
  lb: { type: "string", multiple: true, value: "LB_ID", help: "only this load balancer (repeatable)" },
  listener: { type: "string", multiple: true, value: "LISTENER_ID", help: "only this listener (repeatable)" },
};

export const statsCommands: Command<any>[] = [
  {
    path: ["stats"],
    args: [],
    summary: "one snapshot of listener, pool and member statistics",
    help: "Totals count from totals_since (when the agent began counting: its start); NEW_WORKERS is how\noften the agent saw haproxy start a new worker (a reload or restart) and carried the totals across.",
    options: statsFilterOpts,
    async run(ctx) {
      const res = await ctx.client.stats.getStats(
        { filter: create(StatsFilterSchema, { lbIds: strs(ctx.opts.lb), listenerIds: strs(ctx.opts.listener) }) },
        { signal: ctx.signal },
      );
      return { json: messageJson(GetStatsResponseSchema, res), text: totalsSinceLine(res.totalsSince) + renderStats(res.loadBalancers, ctx.style) };
    },
  },
  {
    path: ["watch"],
    args: [],
    summary: "live table of listeners, pools and members with rates (plain lines when not a terminal)",
    help:
      "On a terminal the table is redrawn at every update; otherwise (or with --json)\n" +
      "each update is printed as lines (JSON: one object per line). Once the stream is\n" +
      "established it reconnects when the agent restarts; an agent that cannot be reached\n" +
      "at the start fails at once (exit 3). Ctrl-C ends it.",
    single: true,
    options: {
      ...statsFilterOpts,
      interval: { type: "string", value: "MS", help: "update interval (default 1000, at least 100)" },
      count: { type: "string", value: "N", help: "stop after N updates" },
    },
    async run(ctx) {
      await runWatch(ctx, {
        lbIds: strs(ctx.opts.lb),
        listenerIds: strs(ctx.opts.listener),
        intervalMs: num(ctx.opts.interval, "--interval") ?? 1000,
        count: num(ctx.opts.count, "--count"),
      });
      return { json: undefined, text: "" };
    },
  },
];
