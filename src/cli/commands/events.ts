// `amphora events`: what happens on the agent, live (EventService.WatchEvents
// through the driver's followEvents, which resumes after a dropped
// connection without losing or repeating an event).
import { EventKind, EventSchema, followEvents, type Event } from "../../driver/index.js";
import type { Command, OptValues, RunContext } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { num, strs } from "../input.js";
import { messageJson, paint } from "../output.js";

/** config_applied <-> EventKind.CONFIG_APPLIED */
const KIND_WORDS = Object.entries(EventKind)
  .filter(([name, v]) => typeof v === "number" && v !== EventKind.UNSPECIFIED && name !== "UNSPECIFIED")
  .map(([name, v]) => [name.toLowerCase(), v as EventKind] as const);

function kindOf(word: string): EventKind {
  const k = KIND_WORDS.find(([w]) => w === word.toLowerCase().replace(/-/g, "_"));
  if (!k) throw new UsageError(`events: unknown kind '${word}' (one of: ${KIND_WORDS.map(([w]) => w).join(", ")})`);
  return k[1];
}

function timeOf(e: Event): string {
  const t = e.time;
  return new Date(t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : Date.now()).toISOString();
}

interface EventsInput {
  since?: number;
  epoch: string;
  count?: number;
  kinds: EventKind[];
  lbIds: string[];
}

/** The options, checked before anything is sent (a usage error exits 2). */
function prepare(_args: string[], opts: OptValues): EventsInput {
  const since = num(opts.since, "--since");
  const epoch = typeof opts.epoch === "string" ? opts.epoch : "";
  if (epoch && since === undefined) throw new UsageError("events: --epoch needs --since");
  return { since, epoch, count: num(opts.count, "--count"), kinds: strs(opts.kind).map(kindOf), lbIds: strs(opts.lb) };
}

async function runEvents(ctx: RunContext<EventsInput>): Promise<void> {
  const { since, epoch, count, kinds, lbIds } = ctx.input;
  let n = 0;
  const ac = new AbortController();
  const stop = () => ac.abort();
  ctx.signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const item of followEvents(ctx.client, {
      kinds,
      lbIds,
      since: since === undefined ? undefined : { epoch, seq: since },
      signal: ac.signal,
      onReconnect: ({ attempt, delayMs, error }) => {
        const what = attempt ? `reconnecting (attempt ${attempt}, in ${delayMs} ms)` : "resuming";
        ctx.stderr.write(`${new Date().toISOString()} ${what}: ${error.rawMessage}\n`);
      },
    })) {
      if (item.type === "resync") {
        // Events may have been missed: say so where a script notices it.
        const from = item.from ? { epoch: item.from.epoch, seq: String(item.from.seq) } : undefined;
        if (ctx.json) ctx.stdout.write(JSON.stringify({ resync: { reason: item.reason, from, message: item.error.rawMessage } }) + "\n");
        else ctx.stdout.write(paint(`${new Date().toISOString()} resync needed (${item.reason}): ${item.error.rawMessage}; following live events from now`, "yellow", ctx.style) + "\n");
        continue;
      }
      if (item.type !== "event") continue;
      const e = item.event;
      if (ctx.json) ctx.stdout.write(JSON.stringify(messageJson(EventSchema, e)) + "\n");
      else ctx.stdout.write(`${timeOf(e)} ${paint(`#${e.seq}`, "dim", ctx.style)} ${EventKind[e.kind]!.toLowerCase()} ${e.summary}\n`);
      n++;
      if (count !== undefined && n >= count) break;
    }
  } finally {
    ac.abort();
    ctx.signal.removeEventListener("abort", stop);
  }
}

export const eventCommands: Command<any>[] = [
  {
    prepare,
    path: ["events"],
    args: [],
    summary: "follow what happens on the agent, live (config stored/applied, reloads, exits, VRRP states, plugs...)",
    help:
      "One line per event: time, #SEQ, kind, summary (--json: one Event object per line).\n" +
      "--since SEQ first replays every later event the agent still holds (0 = all of them),\n" +
      "then follows. A dropped connection is resumed without losing or repeating an event;\n" +
      "when the agent restarted or no longer holds the events, a 'resync needed' line\n" +
      "({\"resync\": ...} with --json) says events may have been missed. Ctrl-C ends it.",
    single: true,
    options: {
      since: { type: "string", value: "SEQ", help: "replay the events after SEQ first (0 = every event still held)" },
      epoch: { type: "string", value: "EPOCH", help: "the epoch SEQ belongs to (default: the agent's current one)" },
      kind: { type: "string", multiple: true, value: "KIND", complete: KIND_WORDS.map(([w]) => w), help: "only this kind (repeatable), e.g. config_applied" },
      lb: { type: "string", multiple: true, value: "LB_ID", help: "only events about this load balancer (repeatable)" },
      count: { type: "string", value: "N", help: "stop after N events" },
    },
    async run(ctx: RunContext<EventsInput>) {
      await runEvents(ctx);
      return { json: undefined, text: "" };
    },
  },
];
