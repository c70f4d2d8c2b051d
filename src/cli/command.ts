// The shape of a subcommand of `amphora`, shared by the command groups
// (commands/*.ts), the command line parser, help, completion and main.
import type { AmphoraClient } from "../driver/index.js";
import type { Style } from "./output.js";

export interface OptSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
  /** Placeholder in help, e.g. MS. */
  value?: string;
  /** What shell completion offers for the value: files, directories or these words. */
  complete?: "file" | "dir" | string[];
  help: string;
}

export type OptValues = Record<string, string | boolean | string[] | undefined>;

export interface RunContext<P> {
  client: AmphoraClient;
  args: string[];
  opts: OptValues;
  input: P;
  signal: AbortSignal;
  style: Style;
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream;
  json: boolean;
}

export interface Output {
  /** What --json prints: a response message in the Protobuf JSON mapping. */
  json: unknown;
  /** What a human sees. */
  text: string;
}

export interface Command<P = unknown> {
  path: string[];
  /** Positional arguments, e.g. ["LB_ID", "FILE"]; a trailing "?" marks optional ones. */
  args: string[];
  summary: string;
  /** Extra help text. */
  help?: string;
  /** The words the first argument can be, for shell completion (e.g. bash, zsh). */
  argWords?: string[];
  options?: Record<string, OptSpec>;
  /** Cannot run against several agents at once. */
  single?: boolean;
  /** Reads local input before anything is sent; throw UsageError for bad input. */
  prepare?: (args: string[], opts: OptValues) => P;
  /** Runs without an agent (no credentials, no fan-out); returns what to print. */
  local?: (args: string[], opts: OptValues) => string;
  run: (ctx: RunContext<P>) => Promise<Output>;
}

/**
 * A command that did part of its work before it failed (`lb apply --wait`:
 * the apply went through, the wait did not): what was done is printed, then
 * the error.
 */
export class PartialFailure {
  constructor(
    readonly error: unknown,
    readonly done: Output,
  ) {}
}
