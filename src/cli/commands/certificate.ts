// `amphora cert put|md5|rm`: CertificateService.
import { basename } from "node:path";
import {
  PutCertificateResponseSchema,
  GetCertificateMd5ResponseSchema,
  DeleteCertificateResponseSchema,
  type CertificateFile,
} from "../../driver/index.js";
import type { Command, RunContext } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { readInput, str } from "../input.js";
import { messageJson } from "../output.js";
import { said } from "./common.js";

export const certificateCommands: Command<any>[] = [
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
];
