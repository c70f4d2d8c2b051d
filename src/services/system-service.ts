import type { ServiceImpl } from "@connectrpc/connect";
import { SystemService } from "../gen/amphora/v1/system_pb.js";
import {
  API_VERSION, cpuCount, cpuUsage, haproxyVersion, hostName, keepalivedVersion, loadAverage, memInfo, readNetDev, rootDisk,
} from "../system/info.js";
import type { AgentContext } from "./context.js";

/** Load balancer facts the system service reports; supplied by the haproxy module. */
export interface LoadBalancerFacts {
  runningCount(): Promise<number>;
  listenerIds(): Promise<string[]>;
}

export function systemService(ctx: AgentContext, lbs?: LoadBalancerFacts): Partial<ServiceImpl<typeof SystemService>> {
  const cfg = () => ctx.config.current;
  const configWarning = () => {
    const f = ctx.config.fallback;
    return f ? `the configuration file could not start the agent (${f.reason}); running on the last configuration that did: ${f.usedFile}` : "";
  };
  return {
    getApiVersion: () => ({ apiVersion: API_VERSION }),
    async getInfo() {
      const [hv, kv] = await Promise.all([haproxyVersion(cfg().haproxyCmd), keepalivedVersion()]);
      return {
        hostname: hostName(),
        haproxyVersion: hv,
        apiVersion: API_VERSION,
        amphoraId: cfg().amphoraId,
        keepalivedVersion: kv,
        agentVersion: ctx.agentVersion,
        configWarning: configWarning(),
      };
    },
    async getDetails() {
      const [hv, net, cpu, mem, disk, load, running, listeners] = await Promise.all([
        haproxyVersion(cfg().haproxyCmd), readNetDev(cfg().netns), cpuUsage(), memInfo(), rootDisk(), loadAverage(),
        lbs?.runningCount() ?? 0, lbs?.listenerIds() ?? [],
      ]);
      const networks: Record<string, { networkTx: bigint; networkRx: bigint }> = {};
      for (const [name, c] of net) if (name !== "lo") networks[name] = { networkTx: c.tx, networkRx: c.rx };
      return {
        hostname: hostName(),
        haproxyVersion: hv,
        apiVersion: API_VERSION,
        amphoraId: cfg().amphoraId,
        networks,
        active: true,
        haproxyCount: running,
        cpuCount: cpuCount(),
        cpu: { total: cpu.total, user: cpu.user, system: cpu.system, softIrq: cpu.softIrq },
        memory: {
          total: mem.total, free: mem.free, buffers: mem.buffers, cached: mem.cached, swapUsed: mem.swapUsed,
          shared: mem.shared, slab: mem.slab, available: mem.available,
        },
        disk,
        load,
        topology: cfg().topology,
        topologyStatus: "OK",
        listeners,
        packages: {},
        warnings: ctx.conditions.list().map((c) => c.message),
        configWarning: configWarning(),
      };
    },
    async updateAgentConfig(req) {
      const r = await ctx.config.update(req.config);
      ctx.events.publish({ kind: "agent_config_changed", applied: r.applied, restartNeeded: r.restartNeeded });
      const notes = [
        r.restartNeeded.length ? `stored; takes effect after a restart: ${r.restartNeeded.join(", ")}` : "",
        r.kept.length ? `kept agent-local options: ${r.kept.join(", ")}` : "",
      ];
      const details = notes.filter(Boolean).join("; ");
      return { message: "OK", details };
    },
    async rotateAgentCertificate(req) {
      const r = await ctx.tls.rotate(req.pem, req.force);
      ctx.events.publish({ kind: "agent_certificate_rotated", subject: r.subject.replace(/\n/g, ","), notAfter: r.notAfter });
      const forced = r.forced ? "; forced: it comes from another issuer than the replaced one (RestorePreviousAgentCertificate serves that one again)" : "";
      return { message: "OK", details: `serving ${r.subject.replace(/\n/g, ",")} until ${r.notAfter}${forced}` };
    },
    async restorePreviousAgentCertificate() {
      const r = await ctx.tls.restorePrevious();
      ctx.events.publish({ kind: "agent_certificate_rotated", subject: r.subject.replace(/\n/g, ","), notAfter: r.notAfter });
      return { message: "OK", details: `serving ${r.subject.replace(/\n/g, ",")} until ${r.notAfter} again` };
    },
  };
}
