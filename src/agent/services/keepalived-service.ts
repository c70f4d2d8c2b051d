import type { ServiceImpl } from "@connectrpc/connect";
import { KeepalivedService, VrrpAction } from "../../gen/amphora/v1/keepalived_pb.js";
import { DomainError, invalid } from "../../errors.js";
import type { AgentContext } from "../context.js";

function need<T>(v: T | undefined, what: string): T {
  if (!v) throw new DomainError("unavailable", `${what} is not configured in this agent`);
  return v;
}

export function keepalivedService(ctx: AgentContext): Partial<ServiceImpl<typeof KeepalivedService>> {
  return {
    async putVrrpConfig(req) {
      const r = await need(ctx.keepalived, "keepalived").upload(req.config);
      return { message: "OK", details: r.warnings.length ? `accepted with warnings: ${r.warnings.join("; ")}` : "" };
    },
    async controlVrrp(req) {
      const k = need(ctx.keepalived, "keepalived");
      switch (req.action) {
        case VrrpAction.START:
          await k.start();
          return { message: "OK", details: "keepalived started" };
        case VrrpAction.STOP:
          await k.stop();
          return { message: "OK", details: "keepalived stopped" };
        case VrrpAction.RELOAD:
          await k.reload();
          return { message: "OK", details: "keepalived reloaded" };
        default:
          throw invalid("Invalid Request", `Unknown action: ${String(req.action)}`);
      }
    },
    async getVrrpStatus() {
      const k = need(ctx.keepalived, "keepalived");
      const [st, v] = await Promise.all([k.status(), k.vips()]);
      return { configured: st.configured, running: st.running, pid: st.pid ?? 0, vips: v.vips, vipsHeld: v.held };
    },
    async putUdpListenerConfig(req) {
      const r = await need(ctx.lvs, "UDP listener store").put(req.listenerId, req.config);
      return { message: "OK", details: r.note };
    },
    async getUdpListenerConfig(req) {
      return { config: await need(ctx.lvs, "UDP listener store").get(req.listenerId) };
    },
  };
}
