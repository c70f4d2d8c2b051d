// `amphora info`, `api-version`, `details`, `agent config`, `agent cert`, `agent cert-restore`:
// SystemService.
import {
  GetInfoResponseSchema,
  GetApiVersionResponseSchema,
  GetDetailsResponseSchema,
  UpdateAgentConfigResponseSchema,
  RotateAgentCertificateResponseSchema,
  RestorePreviousAgentCertificateResponseSchema,
} from "../../driver/index.js";
import type { Command, OptSpec, RunContext } from "../command.js";
import { readInput } from "../input.js";
import { formatBytes, humanize, keyValues, messageJson, table } from "../output.js";
import { said } from "./common.js";

/** GetDetails' sizes: memory in kB (from /proc/meminfo), disk in bytes. */
function detailsRule(path: string) {
  return (key: string, value: unknown): string | undefined => {
    const n = Number(value);
    if (path === "memory") return formatBytes(n * 1024);
    if (path === "disk") return formatBytes(n);
    return undefined;
  };
}

export const systemCommands: Command<any>[] = [
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
      const { networks: _, ...rest } = json;
      const shown: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(rest)) shown[k] = humanize(v, detailsRule(k));
      const nets = Object.entries(res.networks).map(([ifname, c]) => [ifname, formatBytes(Number(c.networkTx)), formatBytes(Number(c.networkRx))]);
      const text = keyValues(shown, ctx.style) + (nets.length ? "\n" + table(["INTERFACE", "TX", "RX"], nets, ctx.style, [1, 2]) : "");
      return { json, text };
    },
  },
];

export const agentCommands: Command<any>[] = [
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
    options: { force: { type: "boolean", help: "accept a certificate from another issuer than the current one's (controllers may stop trusting the agent)" } as OptSpec },
    prepare: (args) => readInput(args[0]!, "PEM file"),
    async run(ctx: RunContext<string>) {
      const res = await ctx.client.system.rotateAgentCertificate({ pem: ctx.input, force: ctx.opts.force === true }, { signal: ctx.signal });
      return { json: messageJson(RotateAgentCertificateResponseSchema, res), text: said(res) };
    },
  },
  {
    path: ["agent", "cert-restore"],
    args: [],
    summary: "serve the agent certificate the last rotation replaced again (undo a rotation)",
    async run(ctx) {
      const res = await ctx.client.system.restorePreviousAgentCertificate({}, { signal: ctx.signal });
      return { json: messageJson(RestorePreviousAgentCertificateResponseSchema, res), text: said(res) };
    },
  },
];
