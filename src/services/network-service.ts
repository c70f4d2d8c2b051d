import type { ServiceImpl } from "@connectrpc/connect";
import {
  NetworkService,
  type AdditionalVip, type FixedIp, type HostRoute, type PlugNetworkRequest, type PlugVipRequest,
} from "../gen/amphora/v1/network_pb.js";
import { interfaceForIp } from "../network/interfaces.js";
import { setRulesForIp } from "../network/interface-rules.js";
import type { NetworkSpec, VipSpec } from "../network/plug-spec.js";
import type { AgentContext } from "./context.js";

// Pure data mapping between the generated messages and the domain specs.
const routes = (rs: HostRoute[]) => rs.map((r) => ({ destination: r.destination, nexthop: r.nexthop }));

function vipSpec(req: PlugVipRequest): VipSpec {
  return {
    vip: req.vip,
    subnetCidr: req.subnetCidr,
    gateway: req.gateway,
    macAddress: req.macAddress,
    mtu: req.mtu,
    vrrpIp: req.vrrpIp,
    hostRoutes: routes(req.hostRoutes),
    additionalVips: req.additionalVips.map((a: AdditionalVip) => ({
      subnetCidr: a.subnetCidr, gateway: a.gateway, ipAddress: a.ipAddress, hostRoutes: routes(a.hostRoutes),
    })),
  };
}

function networkSpec(req: PlugNetworkRequest): NetworkSpec {
  const v = req.vipNetInfo;
  return {
    macAddress: req.macAddress,
    mtu: req.mtu,
    fixedIps: req.fixedIps.map((f: FixedIp) => ({
      ipAddress: f.ipAddress, subnetCidr: f.subnetCidr, gateway: f.gateway, hostRoutes: routes(f.hostRoutes),
    })),
    vipNetInfo: v && v.vip
      ? { vip: v.vip, subnetCidr: v.subnetCidr, gateway: v.gateway, macAddress: v.macAddress || req.macAddress, mtu: v.mtu, vrrpIp: v.vrrpIp, hostRoutes: routes(v.hostRoutes) }
      : undefined,
  };
}

export function networkService(ctx: AgentContext): Partial<ServiceImpl<typeof NetworkService>> {
  const netns = () => ctx.config.current.netns;
  return {
    async getInterface(req) {
      return { message: "OK", interface: await interfaceForIp(req.ip, netns()) };
    },
    async setInterfaceRules(req) {
      const c = ctx.config.current;
      await setRulesForIp({
        ip: req.ip, netns: c.netns, stateDir: c.stateDir, bindHost: c.bindHost, logger: ctx.logger,
        rules: req.rules.map((r) => ({ protocol: r.protocol, cidr: r.cidr, port: r.port })),
      });
      return { message: "OK", details: "" };
    },
    async plugVip(req) {
      const r = await ctx.network.plugVip(vipSpec(req), { bindHost: ctx.config.current.bindHost });
      ctx.events.publish({
        kind: "interface_plugged", plug: "vip", iface: r.ifname, macAddress: req.macAddress.toLowerCase(),
        addresses: [req.vip, ...(req.vrrpIp ? [req.vrrpIp] : []), ...req.additionalVips.map((a) => a.ipAddress)],
      });
      return { message: "OK", details: `VIP ${req.vip} plugged on interface ${r.ifname}`, interface: r.ifname };
    },
    async plugNetwork(req) {
      const r = await ctx.network.plugNetwork(networkSpec(req), { bindHost: ctx.config.current.bindHost });
      ctx.events.publish({
        kind: "interface_plugged", plug: "network", iface: r.ifname, macAddress: req.macAddress.toLowerCase(),
        addresses: req.fixedIps.map((f) => f.ipAddress),
      });
      return { message: "OK", details: `Plugged interface ${r.ifname}`, interface: r.ifname };
    },
  };
}
