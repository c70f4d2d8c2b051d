// `amphora interface`, `interface rules`, `plug vip`, `plug network`:
// NetworkService. Request bodies come from flags, `--from FILE` (the body
// Octavia's controller sends), or both (flags win).
import type { JsonValue } from "@bufbuild/protobuf";
import {
  GetInterfaceResponseSchema,
  SetInterfaceRulesRequestSchema,
  SetInterfaceRulesResponseSchema,
  PlugVipRequestSchema,
  PlugVipResponseSchema,
  PlugNetworkRequestSchema,
  PlugNetworkResponseSchema,
  type PlugNetworkRequest,
  type PlugVipRequest,
  type SetInterfaceRulesRequest,
} from "../../driver/index.js";
import type { Command, RunContext } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { num, pair, parseJsonInput, parseRequest, readInput, requestFromJson, str, strs } from "../input.js";
import { messageJson } from "../output.js";
import { fromOpt, said } from "./common.js";

const list = (v: unknown, each: (s: string) => JsonValue): JsonValue[] | undefined => (strs(v).length ? strs(v).map(each) : undefined);

export const networkCommands: Command<any>[] = [
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
      return parseRequest(SetInterfaceRulesRequestSchema, "rules file", { ip: args[0]!, rules });
    },
    async run(ctx: RunContext<SetInterfaceRulesRequest>) {
      const res = await ctx.client.network.setInterfaceRules(ctx.input, { signal: ctx.signal });
      return { json: messageJson(SetInterfaceRulesResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["plug", "vip"],
    args: ["VIP"],
    summary: "configure the VIP (and its routes) on the interface with the given MAC",
    help: "Give the fields as flags, or the whole Octavia request body with --from FILE\n({subnet_cidr, gateway, mac_address, mtu, vrrp_ip, host_routes, additional_vips}).",
    options: {
      from: fromOpt,
      subnet: { type: "string", value: "CIDR", help: "subnet of the VIP" },
      gateway: { type: "string", value: "IP", help: "default gateway of the subnet" },
      mac: { type: "string", value: "MAC", help: "MAC address of the VIP port" },
      mtu: { type: "string", value: "N", help: "MTU of the interface" },
      "vrrp-ip": { type: "string", value: "IP", help: "this amphora's VRRP address" },
      "host-route": { type: "string", multiple: true, value: "DEST,NEXTHOP", help: "extra route (repeatable)" },
    },
    prepare: (args, opts) =>
      requestFromJson(PlugVipRequestSchema, "plug vip", opts, {
        vip: args[0]!,
        subnet_cidr: str(opts.subnet),
        gateway: str(opts.gateway),
        mac_address: str(opts.mac),
        mtu: num(opts.mtu, "--mtu"),
        vrrp_ip: str(opts["vrrp-ip"]),
        host_routes: list(opts["host-route"], (s) => pair(s, "--host-route", "DEST,NEXTHOP", ["destination", "nexthop"])),
      }),
    async run(ctx: RunContext<PlugVipRequest>) {
      const res = await ctx.client.network.plugVip(ctx.input, { signal: ctx.signal });
      return { json: messageJson(PlugVipResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["plug", "network"],
    args: [],
    summary: "configure a newly attached member network interface (by MAC)",
    help: "Give the fields as flags, or the whole Octavia request body with --from FILE\n({mac_address, fixed_ips, mtu, vip_net_info}).",
    options: {
      from: fromOpt,
      mac: { type: "string", value: "MAC", help: "MAC address of the port" },
      "fixed-ip": { type: "string", multiple: true, value: "IP,CIDR", help: "address and subnet to configure (repeatable)" },
      mtu: { type: "string", value: "N", help: "MTU of the interface" },
    },
    prepare: (_args, opts) => {
      const req = requestFromJson(PlugNetworkRequestSchema, "plug network", opts, {
        mac_address: str(opts.mac),
        mtu: num(opts.mtu, "--mtu"),
        fixed_ips: list(opts["fixed-ip"], (s) => pair(s, "--fixed-ip", "IP,CIDR", ["ip_address", "subnet_cidr"])),
      });
      if (!req.macAddress) throw new UsageError("plug network needs --mac MAC (or mac_address in --from)");
      return req;
    },
    async run(ctx: RunContext<PlugNetworkRequest>) {
      const res = await ctx.client.network.plugNetwork(ctx.input, { signal: ctx.signal });
      return { json: messageJson(PlugNetworkResponseSchema, res), text: said(res) };
    },
  },
];
