// Local input of a command, read and checked before anything is sent:
// files ("-" is standard input), JSON request bodies (`--from FILE` with
// flags on top), and option values. Every problem is a UsageError (exit 2).
import { readFileSync } from "node:fs";
import { fromJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { UsageError } from "./exit-codes.js";
import type { OptValues } from "./command.js";

/** Reads a file argument; "-" is standard input. */
export function readInput(path: string, what = "file"): string {
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`cannot read ${what} ${path === "-" ? "from standard input" : path}: ${err.code === "ENOENT" ? "no such file" : err.message}`);
  }
}

export function parseJsonInput(text: string, what: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new UsageError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * A request body: the JSON object of `--from FILE` (when given) with the
 * fields the flags set on top, then parsed as the request message (field
 * names as in the proto or in lowerCamelCase; unknown fields refused).
 */
export function requestFromJson<D extends DescMessage>(
  schema: D,
  what: string,
  opts: OptValues,
  fields: Record<string, JsonValue | undefined>,
): MessageShape<D> {
  const from = str(opts.from);
  const body = from ? parseJsonInput(readInput(from, "request file"), "request file") : {};
  if (typeof body !== "object" || Array.isArray(body) || body === null) throw new UsageError("--from: expected a JSON object");
  const j: Record<string, JsonValue> = { ...body };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) j[k] = v;
  return parseRequest(schema, what, j);
}

/** A JSON value as the request message; a field the message lacks is a usage error. */
export function parseRequest<D extends DescMessage>(schema: D, what: string, json: JsonValue): MessageShape<D> {
  try {
    return fromJson(schema, json, { ignoreUnknownFields: false });
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
}

export const str = (v: unknown) => (typeof v === "string" ? v : undefined);
export const strs = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);

/** A whole number >= 0 from an option, or undefined when it was not given. */
export function num(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number >= 0, got ${JSON.stringify(v)}`);
  return n;
}

/** "A,B" option values (e.g. --host-route DEST,NEXTHOP) as two named fields. */
export function pair(v: string, flag: string, shape: string, names: [string, string]): Record<string, string> {
  const [a, b, ...rest] = v.split(",");
  if (!a || !b || rest.length) throw new UsageError(`${flag}: expected ${shape}, got ${JSON.stringify(v)}`);
  return { [names[0]]: a, [names[1]]: b };
}
