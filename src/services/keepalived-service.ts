import type { ServiceImpl } from "@connectrpc/connect";
import { KeepalivedService, VrrpAction } from "../gen/amphora/v1/keepalived_pb.js";
import { createHash } from "node:crypto";
import { DomainError, invalid } from "../errors.js";
import type { AgentContext } from "./context.js";

export function keepalivedService(ctx: AgentContext): Partial<ServiceImpl<typeof KeepalivedService>> {
  return {
    async putVrrpConfig(req) {
      let r;
      try {
        r = await ctx.keepalived.upload(req.config);
      } catch (e) {
        const d = e instanceof DomainError ? e : undefined;
        ctx.events.publish({
          kind: "config_rejected", target: "keepalived", lbId: "", reason: (e as Error).message, details: d?.details ?? "", code: d?.reason ?? "",
        });
        throw e;
      }
      ctx.events.publish({ kind: "config_stored", target: "keepalived", lbId: "", version: 0, md5: createHash("md5").update(req.config).digest("hex") });
      return { message: "OK", details: r.warnings.length ? `accepted with warnings: ${r.warnings.join("; ")}` : "" };
    },
    async controlVrrp(req) {
      const k = ctx.keepalived;
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
      const k = ctx.keepalived;
      const [st, v] = await Promise.all([k.status(), k.vips()]);
      return { configured: st.configured, running: st.running, pid: st.pid ?? 0, vips: v.vips, vipsHeld: v.held };
    },
    async putUdpListenerConfig(req) {
      const r = await ctx.lvs.put(req.listenerId, req.config);
      return { message: "OK", details: r.note };
    },
    async getUdpListenerConfig(req) {
      return { config: await ctx.lvs.get(req.listenerId) };
    },
  };
}
