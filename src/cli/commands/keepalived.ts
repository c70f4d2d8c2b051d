// `amphora vrrp put|start|stop|reload|status`, `udp put|get`:
// KeepalivedService.
import {
  VrrpAction,
  PutVrrpConfigResponseSchema,
  ControlVrrpResponseSchema,
  GetVrrpStatusResponseSchema,
  PutUdpListenerConfigResponseSchema,
  GetUdpListenerConfigResponseSchema,
} from "../../driver/index.js";
import type { Command, RunContext } from "../command.js";
import { readInput } from "../input.js";
import { keyValues, messageJson } from "../output.js";
import { amphoraId, amphoraIdOpt, fileText, said } from "./common.js";

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

export const keepalivedCommands: Command<any>[] = [
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
      return { json: messageJson(GetUdpListenerConfigResponseSchema, res), text: fileText(res.config) };
    },
  },
];
