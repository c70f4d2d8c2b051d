// Every subcommand of `amphora`: its arguments, options, the calls it makes
// and how its result looks for humans and for --json.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import {
  applyLoadBalancer,
  waitForListenersActive,
  LoadBalancerAction,
  VrrpAction,
  StatsFilterSchema,
  GetInfoResponseSchema,
  GetApiVersionResponseSchema,
  GetDetailsResponseSchema,
  UpdateAgentConfigResponseSchema,
  RotateAgentCertificateResponseSchema,
  PutConfigResponseSchema,
  GetConfigResponseSchema,
  ControlLoadBalancerResponseSchema,
  DeleteLoadBalancerResponseSchema,
  ListLoadBalancersResponseSchema,
  GetLoadBalancerStatusResponseSchema,
  PutCertificateResponseSchema,
  GetCertificateMd5ResponseSchema,
  DeleteCertificateResponseSchema,
  GetInterfaceResponseSchema,
  SetInterfaceRulesRequestSchema,
  SetInterfaceRulesResponseSchema,
  PlugVipRequestSchema,
  PlugVipResponseSchema,
  PlugNetworkRequestSchema,
  PlugNetworkResponseSchema,
  PutVrrpConfigResponseSchema,
  ControlVrrpResponseSchema,
  GetVrrpStatusResponseSchema,
  PutUdpListenerConfigResponseSchema,
  GetUdpListenerConfigResponseSchema,
  GetStatsResponseSchema,
  ListenerSchema,
  type AmphoraClient,
  type CertificateFile,
} from "../driver/index.js";
import { keyValues, messageJson, paint, statusTint, table, type Style } from "./output.js";
import { renderStats } from "./stats-view.js";
import { UsageError } from "./exit-codes.js";
import { runWatch } from "./watch.js";

export interface OptSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
  /** Placeholder in help, e.g. MS. */
  value?: string;
  help: string;
}

export type OptValues = Record<string, string | boolean | string[] | undefined>;

export interface RunContext<P> {
  client: AmphoraClient;
  args: string[];
  opts: OptValues;
  input: P;
  signal: AbortSignal;
  style: Style;
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream;
  json: boolean;
}

export interface Output {
  /** What --json prints. */
  json: unknown;
  /** What a human sees. */
  text: string;
}

export interface Command<P = unknown> {
  path: string[];
  /** Positional arguments, e.g. ["LB_ID", "FILE"]; a trailing "?" marks optional ones. */
  args: string[];
  summary: string;
  /** Extra help text. */
  help?: string;
  options?: Record<string, OptSpec>;
  /** Cannot run against several agents at once. */
  single?: boolean;
  /** Reads local input before anything is sent; throw UsageError for bad input. */
  prepare?: (args: string[], opts: OptValues) => P;
  run: (ctx: RunContext<P>) => Promise<Output>;
}

/** Reads a file argument; "-" is standard input. */
export function readInput(path: string, what = "file"): string {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`cannot read ${what} ${path === "-" ? "from standard input" : path}: ${err.code === "ENOENT" ? "no such file" : err.message}`);
  }
}

function parseJsonInput(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new UsageError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** "OK" style answers: message and details on one line. */
function said(msg: { message?: string; details?: string }, extra = ""): string {
  const parts = [msg.message || "OK", msg.details, extra].filter(Boolean);
  return parts.join(": ") + "\n";
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const strs = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);
const num = (v: unknown, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number >= 0, got ${JSON.stringify(v)}`);
  return n;
};

/** The amphora id for calls that need it: the flag, or the agent's own answer. */
async function amphoraId(ctx: RunContext<unknown>): Promise<string> {
  return str(ctx.opts["amphora-id"]) ?? (await ctx.client.system.getInfo({}, { signal: ctx.signal })).amphoraId;
}

const amphoraIdOpt: OptSpec = { type: "string", value: "UUID", help: "amphora id in the request (default: the id the agent reports)" };
const expectedMd5Opt: OptSpec = { type: "string", value: "MD5", help: "fail with `aborted` unless the stored config has this md5 (optimistic concurrency)" };

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

function vrrpControl(action: "start" | "stop" | "reload"): Command {
  const code = { start: VrrpAction.START, stop: VrrpAction.STOP, reload: VrrpAction.RELOAD }[action];
  return {
    path: ["vrrp", action],
    args: [],
    summary: `${action} keepalived (VRRP)`,
    async run(ctx) {
      const res = await ctx.client.keepalived.controlVrrp({ action: code }, { signal: ctx.signal });
      return { json: messageJson(ControlVrrpResponseSchema, res), text: said(res) };
    },
  };
}

const statsFilterOpts: Record<string, OptSpec> = {
  lb: { type: "string", multiple: true, value: "LB_ID", help: "only this load balancer (repeatable)" },
  listener: { type: "string", multiple: true, value: "LISTENER_ID", help: "only this listener (repeatable)" },
};

export const COMMANDS: Command<any>[] = [
  {
    path: ["info"],
    args: [],
    summary: "hostname, versions and amphora id of the agent",
    async run(ctx) {
      const res = await ctx.client.system.getInfo({}, { signal: ctx.signal });
      const json = messageJson(GetInfoResponseSchema, res);
      return { json, text: keyValues(json, ctx.style) };
    },
  },
  {
    path: ["api-version"],
    args: [],
    summary: "the API version the agent speaks",
    async run(ctx) {
      const res = await ctx.client.system.getApiVersion({}, { signal: ctx.signal });
      return { json: messageJson(GetApiVersionResponseSchema, res), text: `${res.apiVersion}\n` };
    },
  },
  {
    path: ["details"],
    args: [],
    summary: "resource usage, network counters, topology and listeners of the amphora",
    async run(ctx) {
      const res = await ctx.client.system.getDetails({}, { signal: ctx.signal });
      const json = messageJson(GetDetailsResponseSchema, res) as Record<string, unknown>;
      const { networks, ...rest } = json;
      const nets = Object.entries(res.networks).map(([ifname, c]) => [ifname, String(c.networkTx), String(c.networkRx)]);
      const text = keyValues(rest, ctx.style) + (nets.length ? "\n" + table(["INTERFACE", "TX_BYTES", "RX_BYTES"], nets, ctx.style, [1, 2]) : "");
      return { json: { ...rest, networks }, text };
    },
  },
  {
    path: ["listeners"],
    args: [],
    summary: "every listener of every stored config, with type and status",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.listListeners({}, { signal: ctx.signal });
      const json = res.listeners.map((l) => messageJson(ListenerSchema, l));
      const rows = res.listeners.map((l) => [l.uuid, l.lbId, l.type, paint(l.status, statusTint(l.status), ctx.style)]);
      return { json, text: table(["LISTENER", "LB", "TYPE", "STATUS"], rows, ctx.style) || "no listeners\n" };
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
      return { json: messageJson(GetConfigResponseSchema, res), text: res.config.endsWith("\n") || !res.config ? res.config : res.config + "\n" };
    },
  },
  {
    path: ["lb", "list"],
    args: [],
    summary: "every load balancer the agent manages, with process state and config version",
    async run(ctx) {
      const res = await ctx.client.loadBalancer.listLoadBalancers({}, { signal: ctx.signal });
      const rows = res.loadBalancers.map((s) => [
        s.lbId, paint(s.state, statusTint(s.state), ctx.style), s.wanted || "-", String(s.configVersion), String(s.servedVersion),
        s.masterPid ? String(s.masterPid) : "-", String(s.workers.length), String(s.reloads), String(s.failedReloads),
        String(s.restarts) + (s.restartPending ? " (pending)" : ""), s.lastAction,
      ]);
      return {
        json: messageJson(ListLoadBalancersResponseSchema, res),
        text: table(["LB", "STATE", "WANTED", "VERSION", "SERVED", "PID", "WORKERS", "RELOADS", "FAILED", "RESTARTS", "LAST_ACTION"], rows, ctx.style, [3, 4, 5, 6, 7, 8]) || "no load balancers\n",
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
      return { json, text: keyValues(json.status ?? {}, ctx.style) };
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
    summary: "upload certificates (unchanged ones skipped), the config, then reload or start",
    options: {
      config: { type: "string", value: "FILE", help: "the haproxy config (required)" },
      pem: { type: "string", multiple: true, value: "FILE", help: "a certificate PEM bundle, stored under its file name (repeatable)" },
      "amphora-id": amphoraIdOpt,
      "expected-md5": expectedMd5Opt,
      wait: { type: "boolean", help: "then wait until its listeners are ACTIVE" },
      "wait-timeout": { type: "string", value: "MS", help: "how long --wait waits (default 30000)" },
    },
    prepare: (_args, opts) => {
      const cfg = str(opts.config);
      if (!cfg) throw new UsageError("lb apply needs --config FILE");
      const certificates: CertificateFile[] = strs(opts.pem).map((f) => ({ filename: basename(f), pem: readInput(f, "certificate file") }));
      return { config: readInput(cfg, "config file"), certificates };
    },
    async run(ctx: RunContext<{ config: string; certificates: CertificateFile[] }>) {
      const lbId = ctx.args[0]!;
      const res = await applyLoadBalancer(ctx.client, {
        amphoraId: await amphoraId(ctx),
        lbId,
        config: ctx.input.config,
        certificates: ctx.input.certificates,
        expectedMd5: str(ctx.opts["expected-md5"]),
        signal: ctx.signal,
      });
      let listeners: { uuid: string; status: string }[] | undefined;
      if (ctx.opts.wait) {
        listeners = await waitForListenersActive(ctx.client, { lbId, timeoutMs: num(ctx.opts["wait-timeout"], "--wait-timeout"), signal: ctx.signal });
      }
      const lines = [
        ...res.certificates.map((c) => `certificate ${c.filename}: ${c.uploaded ? "uploaded" : "unchanged"} (md5 ${c.md5})`),
        `config stored: md5 ${res.configMd5}${res.configVersion ? `, version ${res.configVersion}` : ""}`,
        `haproxy ${res.action === "reload" ? "reloaded" : "started"}`,
        ...(listeners ? [`listeners ACTIVE: ${listeners.map((l) => l.uuid).join(", ")}`] : []),
      ];
      return {
        json: {
          certificates: res.certificates,
          config_md5: res.configMd5,
          config_version: res.configVersion.toString(),
          action: res.action,
          served_version: res.servedVersion.toString(),
          ...(listeners ? { listeners: listeners.map((l) => messageJson(ListenerSchema, l as never)) } : {}),
        },
        text: lines.join("\n") + "\n",
      };
    },
  },
  {
    path: ["lb", "wait"],
    args: ["LB_ID"],
    summary: "wait until the load balancer's listeners are ACTIVE",
    options: {
      listener: { type: "string", multiple: true, value: "LISTENER_ID", help: "wait for exactly these listeners (repeatable)" },
      "wait-timeout": { type: "string", value: "MS", help: "give up after this long (default 30000)" },
    },
    async run(ctx) {
      const listeners = await waitForListenersActive(ctx.client, {
        lbId: ctx.args[0]!,
        listenerIds: strs(ctx.opts.listener),
        timeoutMs: num(ctx.opts["wait-timeout"], "--wait-timeout"),
        signal: ctx.signal,
      });
      return {
        json: listeners.map((l) => messageJson(ListenerSchema, l)),
        text: table(["LISTENER", "LB", "TYPE", "STATUS"], listeners.map((l) => [l.uuid, l.lbId, l.type, paint(l.status, "green", ctx.style)]), ctx.style),
      };
    },
  },
  {
    path: ["cert", "put"],
    args: ["LB_ID", "FILE"],
    summary: "upload a PEM bundle (key, certificate, chain) for a load balancer",
    options: { name: { type: "string", value: "NAME.pem", help: "file name on the amphora (default: the base name of FILE)" } },
    prepare: (args, opts) => {
      const filename = str(opts.name) ?? (args[1] === "-" ? undefined : basename(args[1]!));
      if (!filename) throw new UsageError("reading the PEM from standard input needs --name NAME.pem");
      return { filename, pem: readInput(args[1]!, "certificate file") };
    },
    async run(ctx: RunContext<CertificateFile>) {
      const res = await ctx.client.certificate.putCertificate({ lbId: ctx.args[0]!, ...ctx.input }, { signal: ctx.signal });
      return { json: messageJson(PutCertificateResponseSchema, res), text: said(res, res.md5sum ? `md5 ${res.md5sum}` : "") };
    },
  },
  {
    path: ["cert", "md5"],
    args: ["LB_ID", "NAME"],
    summary: "md5 of a stored certificate file (the PEM itself is never returned)",
    async run(ctx) {
      const res = await ctx.client.certificate.getCertificateMd5({ lbId: ctx.args[0]!, filename: ctx.args[1]! }, { signal: ctx.signal });
      return { json: messageJson(GetCertificateMd5ResponseSchema, res), text: `${res.md5sum}\n` };
    },
  },
  {
    path: ["cert", "rm"],
    args: ["LB_ID", "NAME"],
    summary: "delete a stored certificate file",
    async run(ctx) {
      const res = await ctx.client.certificate.deleteCertificate({ lbId: ctx.args[0]!, filename: ctx.args[1]! }, { signal: ctx.signal });
      return { json: messageJson(DeleteCertificateResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["interface"],
    args: ["IP"],
    summary: "the interface that holds an IP address",
    async run(ctx) {
      const res = await ctx.client.network.getInterface({ ip: ctx.args[0]! }, { signal: ctx.signal });
      return { json: messageJson(GetInterfaceResponseSchema, res), text: `${res.interface}\n` };
    },
  },
  {
    path: ["interface", "rules"],
    args: ["IP", "FILE"],
    summary: "replace the firewall rules of the interface holding IP; FILE: JSON [{protocol, cidr, port}]",
    prepare: (args) => {
      const rules = parseJsonInput(readInput(args[1]!, "rules file"), "rules file");
      if (!Array.isArray(rules)) throw new UsageError("rules file: expected a JSON array of {protocol, cidr, port}");
      try {
        return fromJson(SetInterfaceRulesRequestSchema, { ip: args[0]!, rules });
      } catch (e) {
        throw new UsageError(`rules file: ${(e as Error).message}`);
      }
    },
    async run(ctx) {
      const res = await ctx.client.network.setInterfaceRules(ctx.input as never, { signal: ctx.signal });
      return { json: messageJson(SetInterfaceRulesResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["plug", "vip"],
    args: ["VIP"],
    summary: "configure the VIP (and its routes) on the interface with the given MAC",
    help: "Give the fields as flags, or the whole Octavia request body with --from FILE\n({subnet_cidr, gateway, mac_address, mtu, vrrp_ip, host_routes, additional_vips}).",
    options: {
      from: { type: "string", value: "FILE", help: "request body as JSON (flags override its fields)" },
      subnet: { type: "string", value: "CIDR", help: "subnet of the VIP" },
      gateway: { type: "string", value: "IP", help: "default gateway of the subnet" },
      mac: { type: "string", value: "MAC", help: "MAC address of the VIP port" },
      mtu: { type: "string", value: "N", help: "MTU of the interface" },
      "vrrp-ip": { type: "string", value: "IP", help: "this amphora's VRRP address" },
      "host-route": { type: "string", multiple: true, value: "DEST,NEXTHOP", help: "extra route (repeatable)" },
    },
    prepare: (args, opts) => {
      const body = (opts.from ? parseJsonInput(readInput(str(opts.from)!, "request file"), "request file") : {}) as Record<string, JsonValue>;
      if (typeof body !== "object" || Array.isArray(body) || body === null) throw new UsageError("--from: expected a JSON object");
      const j: Record<string, JsonValue> = { ...body, vip: args[0]! };
      if (opts.subnet) j.subnet_cidr = str(opts.subnet)!;
      if (opts.gateway) j.gateway = str(opts.gateway)!;
      if (opts.mac) j.mac_address = str(opts.mac)!;
      if (opts.mtu) j.mtu = num(opts.mtu, "--mtu")!;
      if (opts["vrrp-ip"]) j.vrrp_ip = str(opts["vrrp-ip"])!;
      if (strs(opts["host-route"]).length) j.host_routes = strs(opts["host-route"]).map(hostRoute);
      try {
        return fromJson(PlugVipRequestSchema, j, { ignoreUnknownFields: false });
      } catch (e) {
        throw new UsageError(`plug vip: ${(e as Error).message}`);
      }
    },
    async run(ctx) {
      const res = await ctx.client.network.plugVip(ctx.input as never, { signal: ctx.signal });
      return { json: messageJson(PlugVipResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["plug", "network"],
    args: [],
    summary: "configure a newly attached member network interface (by MAC)",
    help: "Give the fields as flags, or the whole Octavia request body with --from FILE\n({mac_address, fixed_ips, mtu, vip_net_info}).",
    options: {
      from: { type: "string", value: "FILE", help: "request body as JSON (flags override its fields)" },
      mac: { type: "string", value: "MAC", help: "MAC address of the port" },
      "fixed-ip": { type: "string", multiple: true, value: "IP,CIDR", help: "address and subnet to configure (repeatable)" },
      mtu: { type: "string", value: "N", help: "MTU of the interface" },
    },
    prepare: (_args, opts) => {
      const body = (opts.from ? parseJsonInput(readInput(str(opts.from)!, "request file"), "request file") : {}) as Record<string, JsonValue>;
      if (typeof body !== "object" || Array.isArray(body) || body === null) throw new UsageError("--from: expected a JSON object");
      const j: Record<string, JsonValue> = { ...body };
      if (opts.mac) j.mac_address = str(opts.mac)!;
      if (opts.mtu) j.mtu = num(opts.mtu, "--mtu")!;
      if (strs(opts["fixed-ip"]).length) {
        j.fixed_ips = strs(opts["fixed-ip"]).map((s) => {
          const [ip, cidr] = s.split(",");
          if (!ip || !cidr) throw new UsageError(`--fixed-ip: expected IP,CIDR, got ${JSON.stringify(s)}`);
          return { ip_address: ip, subnet_cidr: cidr };
        });
      }
      if (!j.mac_address) throw new UsageError("plug network needs --mac MAC (or mac_address in --from)");
      try {
        return fromJson(PlugNetworkRequestSchema, j, { ignoreUnknownFields: false });
      } catch (e) {
        throw new UsageError(`plug network: ${(e as Error).message}`);
      }
    },
    async run(ctx) {
      const res = await ctx.client.network.plugNetwork(ctx.input as never, { signal: ctx.signal });
      return { json: messageJson(PlugNetworkResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["vrrp", "put"],
    args: ["FILE"],
    summary: "upload the keepalived (VRRP) config; FILE - reads standard input",
    prepare: (args) => readInput(args[0]!, "keepalived config"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.keepalived.putVrrpConfig({ config: ctx.input }, { signal: ctx.signal });
      return { json: messageJson(PutVrrpConfigResponseSchema, res), text: said(res) };
    },
  },
  vrrpControl("start"),
  vrrpControl("stop"),
  vrrpControl("reload"),
  {
    path: ["vrrp", "status"],
    args: [],
    summary: "whether keepalived runs and which VIPs this amphora holds (MASTER holds them all)",
    async run(ctx) {
      const res = await ctx.client.keepalived.getVrrpStatus({}, { signal: ctx.signal });
      const json = messageJson(GetVrrpStatusResponseSchema, res) as Record<string, unknown>;
      // What an operator asks first about a pair: which one has the VIPs.
      const role = !res.running ? "STOPPED"
        : !res.vips.length ? "RUNNING"
        : res.vipsHeld.length === res.vips.length ? "MASTER"
        : res.vipsHeld.length ? "PARTIAL"
        : "BACKUP";
      return { json, text: keyValues({ role, ...json }, ctx.style) };
    },
  },
  {
    path: ["udp", "put"],
    args: ["LISTENER_ID", "FILE"],
    summary: "upload the keepalived config of a UDP listener",
    options: { "amphora-id": amphoraIdOpt },
    prepare: (args) => readInput(args[1]!, "UDP listener config"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.keepalived.putUdpListenerConfig(
        { amphoraId: await amphoraId(ctx), listenerId: ctx.args[0]!, config: ctx.input },
        { signal: ctx.signal },
      );
      return { json: messageJson(PutUdpListenerConfigResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["udp", "get"],
    args: ["LISTENER_ID"],
    summary: "print the stored keepalived config of a UDP listener",
    async run(ctx) {
      const res = await ctx.client.keepalived.getUdpListenerConfig({ listenerId: ctx.args[0]! }, { signal: ctx.signal });
      return { json: messageJson(GetUdpListenerConfigResponseSchema, res), text: res.config.endsWith("\n") || !res.config ? res.config : res.config + "\n" };
    },
  },
  {
    path: ["agent", "config"],
    args: ["FILE"],
    summary: "replace the agent's configuration file (mutable options apply at once)",
    prepare: (args) => readInput(args[0]!, "agent config"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.system.updateAgentConfig({ config: ctx.input }, { signal: ctx.signal });
      return { json: messageJson(UpdateAgentConfigResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["agent", "cert"],
    args: ["FILE"],
    summary: "replace the agent's own TLS server certificate (PEM key + certificate)",
    prepare: (args) => readInput(args[0]!, "PEM file"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.system.rotateAgentCertificate({ pem: ctx.input }, { signal: ctx.signal });
      return { json: messageJson(RotateAgentCertificateResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["stats"],
    args: [],
    summary: "one snapshot of listener, pool and member statistics",
    options: statsFilterOpts,
    async run(ctx) {
      const res = await ctx.client.stats.getStats(
        { filter: create(StatsFilterSchema, { lbIds: strs(ctx.opts.lb), listenerIds: strs(ctx.opts.listener) }) },
        { signal: ctx.signal },
      );
      return { json: messageJson(GetStatsResponseSchema, res), text: renderStats(res.loadBalancers, ctx.style) };
    },
  },
  {
    path: ["watch"],
    args: [],
    summary: "live table of listeners, pools and members with rates (plain lines when not a terminal)",
    help:
      "On a terminal the table is redrawn at every update; otherwise (or with --json)\n" +
      "each update is printed as lines (JSON: one object per line). Reconnects when\n" +
      "the agent restarts. Ctrl-C ends it.",
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

function hostRoute(s: string): JsonValue {
  const [destination, nexthop] = s.split(",");
  if (!destination || !nexthop) throw new UsageError(`--host-route: expected DEST,NEXTHOP, got ${JSON.stringify(s)}`);
  return { destination, nexthop };
}

/** Groups for help: first words of the command paths. */
export function commandGroups(): Map<string, Command[]> {
  const m = new Map<string, Command[]>();
  for (const c of COMMANDS) {
    const g = c.path[0]!;
    m.set(g, [...(m.get(g) ?? []), c]);
  }
  return m;
}
