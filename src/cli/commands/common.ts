// Pieces several command groups share: the "OK: details" answer line, the
// amphora id a request needs, and the options that mean the same everywhere.
import type { OptSpec, RunContext } from "../command.js";
import { str } from "../input.js";

/** "OK" style answers: message and details on one line. */
export function said(msg: { message?: string; details?: string }, extra = ""): string {
  const parts = [msg.message || "OK", msg.details, extra].filter(Boolean);
  return parts.join(": ") + "\n";
}

/** The text of a stored file, ending in a newline. */
export function fileText(s: string): string {
  return s.endsWith("\n") || !s ? s : s + "\n";
}

/** The amphora id for calls that need it: the flag, or the agent's own answer. */
export async function amphoraId(ctx: RunContext<unknown>): Promise<string> {
  return str(ctx.opts["amphora-id"]) ?? (await ctx.client.system.getInfo({}, { signal: ctx.signal })).amphoraId;
}

export const amphoraIdOpt: OptSpec = { type: "string", value: "UUID", help: "amphora id in the request (default: the id the agent reports)" };
export const expectedMd5Opt: OptSpec = { type: "string", value: "MD5", help: "fail with `aborted` unless the stored config has this md5 (optimistic concurrency)" };
export const fromOpt: OptSpec = { type: "string", value: "FILE", complete: "file", help: "request body as JSON (flags override its fields)" };
