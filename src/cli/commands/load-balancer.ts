// `amphora listeners`, `config put|get`, `lb list|status|start|stop|reload|
// delete|apply|wait`: LoadBalancerService and the driver's flows around it.
import { basename } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  applyLoadBalancer,
  waitForListenersActive,
  LoadBalancerAction,
  PutConfigResponseSchema,
  GetConfigResponseSchema,
  ControlLoadBalancerResponseSchema,
  DeleteLoadBalancerResponseSchema,
  ListLoadBalancersResponseSchema,
  ListListenersResponseSchema,
  GetLoadBalancerStatusResponseSchema,
  type CertificateFile,
  type Listener,
} from "../../driver/index.js";
import { PartialFailure, type Command, type OptSpec, type Output, type RunContext } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { num, readInput, str, strs } from "../input.js";
import { firstLine, formatAge, humanize, keyValues, messageJson, paint, statusTint, table, timeRule, type Style } from "../output.js";
import { amphoraId, amphoraIdOpt, expectedMd5Opt, fileText, said } from "./common.js";

function lbControl(action: "start" | "stop" | "reload"): Command {
  const code = { start: LoadBalancerAction.START, stop: LoadBalancerAction.STOP, reload: LoadBalancerAction.RELOAD }[action];
  return {
    path: ["lb", action],
    args: ["LB_ID"],
    summary: `${action} the load balancer's haproxy`,
    options: {
      ...(action === "reload" ? { force: { type: "boolean", help: "reload even if the memory check says old and new workers may not both fit" } as OptSpec } : {}),
      ...(action === "stop" ? { "stop-timeout": { type: "string", value: "MS", help: "wait this long for in-flight connections before SIGTERM (default 10000)" } as OptSpec } : {}),
      "expected-md5": expectedMd5Opt,
    },
    async run(ctx) {
      const stopTimeoutMs = num(ctx.opts["stop-timeout"], "--stop-timeout") ?? 0;
      const res = await ctx.client.loadBalancer.controlLoadBalancer(
        { lbId: ctx.args[0]!, action: code, force: ctx.opts.force === true, stopTimeoutMs, expectedMd5: str(ctx.opts["expected-md5"]) },
        // A graceful stop takes as long as it was allowed to: give the call that much more.
        { signal: ctx.signal, timeoutMs: stopTimeoutMs && ctx.client.timeoutMs ? ctx.client.timeoutMs + stopTimeoutMs : undefined },
      );
      return { json: messageJson(ControlLoadBalancerResponseSchema, res), text: said(res, res.version ? `config version ${res.version}` : "") };
    },
  };
}

function listenersOutput(listeners: Listener[], style: Style, empty = ""): Output {
  const rows = listeners.map((l) => [l.uuid, l.lbId, l.type, paint(l.status, statusTint(l.status), style)]);
  return {
    json: messageJson(ListListenersResponseSchema, create(ListListenersResponseSchema, { listeners })),
    text: table(["LISTENER", "LB", "TYPE", "STATUS"], rows, style) || empty,
  };
}

const waitTimeoutOpt = (what: string): OptSpec => ({ type: "string", value: "MS", help: `${what} (default 30000)` });

export const loadBalancerCommands: Command<any>[] = [
  {
    path: ["listeners"],
    args: [],
    summary: "every listener of every stored config, with type and status",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.listListeners({}, { signal: ctx.signal });
      return listenersOutput(res.listeners, ctx.style, "no listeners\n");
    },
  },
  {
    path: ["config", "put"],
    args: ["LB_ID", "FILE"],
    summary: "validate (haproxy -c) and store a haproxy config; FILE - reads standard input",
    help: "Does not reload: follow with `amphora lb reload LB_ID` (or use `amphora lb apply`).",
    options: { "amphora-id": amphoraIdOpt, "expected-md5": expectedMd5Opt },
    prepare: (args) => readInput(args[1]!, "config file"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.loadBalancer.putConfig(
        { amphoraId: await amphoraId(ctx), lbId: ctx.args[0]!, config: ctx.input, expectedMd5: str(ctx.opts["expected-md5"]) },
        { signal: ctx.signal },
      );
      return { json: messageJson(PutConfigResponseSchema, res), text: said(res, `md5 ${res.md5}${res.version ? `, version ${res.version}` : ""}`) };
    },
  },
  {
    path: ["config", "get"],
    args: ["LB_ID"],
    summary: "print the stored haproxy config of a load balancer",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.getConfig({ lbId: ctx.args[0]! }, { signal: ctx.signal });
      return { json: messageJson(GetConfigResponseSchema, res), text: fileText(res.config) };
    },
  },
  {
    path: ["lb", "list"],
    args: [],
    summary: "every load balancer the agent manages, with process state and config version",
    help: "RELOADS and FAILED count haproxy's own reloads of its master process; LAST_EXIT is how long\nago haproxy last exited on its own.",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.listLoadBalancers({}, { signal: ctx.signal });
      const rows = res.loadBalancers.map((s) => [
        s.lbId, paint(s.state, statusTint(s.state), ctx.style), s.wanted || "-", String(s.configVersion), String(s.servedVersion),
        s.masterPid ? String(s.masterPid) : "-", String(s.workers.length), String(s.reloads), String(s.failedReloads),
        String(s.restarts) + (s.restartPending ? " (pending)" : ""), formatAge(Number(s.lastExitAtMs)),
        // haproxy's own output (ALERT lines) can be in it: one line per row.
        s.lastAction ? firstLine(s.lastAction) : "-",
      ]);
      return {
        json: messageJson(ListLoadBalancersResponseSchema, res),
        text: table(
          ["LB", "STATE", "WANTED", "VERSION", "SERVED", "PID", "WORKERS", "RELOADS", "FAILED", "RESTARTS", "LAST_EXIT", "LAST_ACTION"],
          rows, ctx.style, [3, 4, 5, 6, 7, 8],
        ) || "no load balancers\n",
      };
    },
  },
  {
    path: ["lb", "status"],
    args: ["LB_ID"],
    summary: "process state, config version and reload history of one load balancer",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.getLoadBalancerStatus({ lbId: ctx.args[0]! }, { signal: ctx.signal });
      const json = messageJson(GetLoadBalancerStatusResponseSchema, res) as { status?: unknown };
      return { json, text: keyValues(humanize(json.status ?? {}, timeRule), ctx.style) };
    },
  },
  lbControl("start"),
  lbControl("stop"),
  lbControl("reload"),
  {
    path: ["lb", "delete"],
    args: ["LB_ID"],
    summary: "stop haproxy and remove config, certificates and sockets (succeeds if unknown)",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.deleteLoadBalancer({ lbId: ctx.args[0]! }, { signal: ctx.signal });
      return { json: messageJson(DeleteLoadBalancerResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["lb", "apply"],
    args: ["LB_ID"],
    summary: "upload certificates (unchanged ones skipped), the config, then reload (starts it if stopped)",
    help: "--json prints {certificates, config_md5, config_version, action, served_version, details}\n(and listeners with --wait), in the conventions of the Protobuf JSON mapping.",
    options: {
      config: { type: "string", value: "FILE", complete: "file", help: "the haproxy config (required)" },
      pem: { type: "string", multiple: true, value: "FILE", complete: "file", help: "a certificate PEM bundle, stored under its file name (repeatable)" },
      "amphora-id": amphoraIdOpt,
      "expected-md5": expectedMd5Opt,
      wait: { type: "boolean", help: "then wait until its listeners are ACTIVE" },
      "wait-timeout": waitTimeoutOpt("how long --wait waits"),
    },
    prepare: (_args, opts) => {
      const cfg = str(opts.config);
      if (!cfg) throw new UsageError("lb apply needs --config FILE");
      const certificates: CertificateFile[] = strs(opts.pem).map((f) => ({ filename: basename(f), pem: readInput(f, "certificate file") }));
      return { config: readInput(cfg, "config file"), certificates };
    },
    async run(ctx: RunContext<{ config: string; certificates: CertificateFile[] }>) {
      const lbId = ctx.args[0]!;
      const waitTimeoutMs = num(ctx.opts["wait-timeout"], "--wait-timeout");
      const res = await applyLoadBalancer(ctx.client, {
        amphoraId: await amphoraId(ctx),
        lbId,
        config: ctx.input.config,
        certificates: ctx.input.certificates,
        expectedMd5: str(ctx.opts["expected-md5"]),
        signal: ctx.signal,
      });
      const done: Output = {
        json: {
          certificates: res.certificates,
          config_md5: res.configMd5,
          config_version: res.configVersion.toString(),
          action: res.action,
          served_version: res.servedVersion.toString(),
          details: res.details,
        },
        text: [
          ...res.certificates.map((c) => `certificate ${c.filename}: ${c.uploaded ? "uploaded" : "unchanged"} (md5 ${c.md5})`),
          `config stored: md5 ${res.configMd5}${res.configVersion ? `, version ${res.configVersion}` : ""}`,
          `haproxy ${res.action === "reload" ? "reloaded" : "started"}`,
        ].join("\n") + "\n",
      };
      if (!ctx.opts.wait) return done;
      let listeners: Listener[];
      try {
        listeners = await waitForListenersActive(ctx.client, { lbId, timeoutMs: waitTimeoutMs, signal: ctx.signal });
      } catch (e) {
        // The apply went through: say so before the wait's error.
        throw new PartialFailure(e, done);
      }
      const w = listenersOutput(listeners, ctx.style);
      return {
        json: { ...(done.json as object), listeners: (w.json as { listeners: unknown }).listeners },
        text: done.text + `listeners ACTIVE: ${listeners.map((l) => l.uuid).join(", ")}\n`,
      };
    },
  },
  {
    path: ["lb", "wait"],
    args: ["LB_ID"],
    summary: "wait until the load balancer's listeners are ACTIVE",
    help: "Fails at once when the load balancer is not on the amphora, or when its config names no\nlistener to wait for (listeners are the config's frontends, named by listener id).",
    options: {
      listener: { type: "string", multiple: true, value: "LISTENER_ID", help: "wait for exactly these listeners (repeatable)" },
      "wait-timeout": waitTimeoutOpt("give up after this long"),
    },
    async run(ctx) {
      const listeners = await waitForListenersActive(ctx.client, {
        lbId: ctx.args[0]!,
        listenerIds: strs(ctx.opts.listener),
        timeoutMs: num(ctx.opts["wait-timeout"], "--wait-timeout"),
        signal: ctx.signal,
      });
      return listenersOutput(listeners, ctx.style);
    },
  },
];
