import type { ServiceImpl } from "@connectrpc/connect";
import { NetworkService } from "../../gen/amphora/v1/network_pb.js";
import { interfaceForIp } from "../../network/interfaces.js";
import type { AgentContext } from "../context.js";

// Plugging VIPs and networks and interface rules come with the network work;
// until then those methods answer `unimplemented`.
export function networkService(ctx: AgentContext): Partial<ServiceImpl<typeof NetworkService>> {
  return {
    async getInterface(req) {
      return { message: "OK", interface: await interfaceForIp(req.ip, ctx.config.current.netns) };
    },
  };
}
