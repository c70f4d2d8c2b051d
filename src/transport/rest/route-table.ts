// The REST route table, built at start from the `(amphora.v1.rest)` option
// of every method the agent serves. The proto files are the only list of
// routes; this module turns the options into matchable templates and checks
// them once, so a wrong option fails the start instead of a request.
import { getOption, hasOption, ScalarType, type DescField, type DescMethod, type DescMethodUnary } from "@bufbuild/protobuf";
import { field as validateFieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { rest, type RestRoute } from "../../gen/amphora/v1/options_pb.js";

type Segment = { literal: string } | { field: DescField };

/** How the request body becomes part of the request message. */
export type BodyKind =
  | { kind: "none" }
  | { kind: "text"; field: DescField } // raw body into a string field
  | { kind: "bytes"; field: DescField } // raw body into a bytes field
  | { kind: "json-list"; field: DescField } // JSON array into a repeated field
  | { kind: "json-object" }; // JSON object onto the whole request

/** How the response message becomes the response body. */
export type ResponseKind =
  | { kind: "json" }
  | { kind: "text"; field: DescField }
  | { kind: "json-list"; field: DescField };

export interface RestEndpoint {
  verb: string;
  template: string;
  segments: Segment[];
  method: DescMethodUnary;
  option: RestRoute;
  body: BodyKind;
  /** Largest body accepted, in bytes (from the field's max_bytes rule when it has one). */
  bodyLimit: number;
  response: ResponseKind;
  successStatus: number;
  etagField?: DescField;
  ifMatchField?: DescField;
  /** "message" of a 400 for a request that breaks a rule. */
  invalidMessage: string;
  /** Status of an invalid_argument answer (400 unless the route says otherwise). */
  invalidStatus: number;
  /** Status of a failed_precondition answer (409 unless the route says otherwise). */
  preconditionStatus: number;
}

export type Match =
  | { kind: "found"; endpoint: RestEndpoint; params: Map<DescField, string> }
  | { kind: "wrong-verb"; allowed: string[] }
  | { kind: "none" };

/** Body limit of a route whose body is JSON, or that takes no body at all. */
export const DEFAULT_JSON_LIMIT = 1024 * 1024;
export const NO_BODY_LIMIT = 64 * 1024;
/** For a text body field without a max_bytes rule. */
export const DEFAULT_TEXT_LIMIT = 1024 * 1024;

const VERBS = new Set(["GET", "PUT", "POST", "DELETE", "PATCH"]);

export function splitPath(path: string): string[] {
  const p = path.startsWith("/") ? path.slice(1) : path;
  return p === "" ? [] : p.split("/");
}

function fieldByName(method: DescMethod, which: "input" | "output", name: string, what: string): DescField {
  const msg = method[which];
  const f = msg.fields.find((x) => x.name === name);
  if (!f) throw new Error(`${method.parent.typeName}.${method.name}: (rest).${what} names "${name}", which ${msg.typeName} does not have`);
  return f;
}

function maxBytesRule(f: DescField): number | undefined {
  if (!hasOption(f, validateFieldRules)) return undefined;
  const rules = getOption(f, validateFieldRules);
  if (rules.type.case === "string" || rules.type.case === "bytes") {
    const v = rules.type.value as { maxBytes?: bigint; maxLen?: bigint };
    if (v.maxBytes && v.maxBytes > 0n) return Number(v.maxBytes);
    if (v.maxLen && v.maxLen > 0n) {
      // bytes: max_len counts bytes; string: characters, at most four UTF-8 bytes each.
      return rules.type.case === "bytes" ? Number(v.maxLen) : Number(v.maxLen) * 4;
    }
  }
  return undefined;
}

function parseSegments(method: DescMethod, template: string): Segment[] {
  const where = `${method.parent.typeName}.${method.name}`;
  if (!template.startsWith("/")) throw new Error(`${where}: REST path ${JSON.stringify(template)} must start with "/"`);
  const seen = new Set<string>();
  return splitPath(template).map((s) => {
    const m = /^\{([a-z_][a-z0-9_]*)\}$/.exec(s);
    if (!m) {
      if (s === "" || s.includes("{") || s.includes("}")) throw new Error(`${where}: bad segment ${JSON.stringify(s)} in ${template}`);
      return { literal: s };
    }
    const f = fieldByName(method, "input", m[1], "path");
    if (f.fieldKind !== "scalar" && f.fieldKind !== "enum") throw new Error(`${where}: path variable ${m[1]} must be a scalar or enum field`);
    if (seen.has(m[1])) throw new Error(`${where}: path variable ${m[1]} appears twice in ${template}`);
    seen.add(m[1]);
    return { field: f };
  });
}

function bodyKind(method: DescMethod, o: RestRoute): BodyKind {
  if (o.body === "") return { kind: "none" };
  if (o.body === "*") return { kind: "json-object" };
  const f = fieldByName(method, "input", o.body, "body");
  if (f.fieldKind === "scalar" && f.scalar === ScalarType.STRING) return { kind: "text", field: f };
  if (f.fieldKind === "scalar" && f.scalar === ScalarType.BYTES) return { kind: "bytes", field: f };
  if (f.fieldKind === "list") return { kind: "json-list", field: f };
  throw new Error(`${method.parent.typeName}.${method.name}: (rest).body field ${o.body} must be a string, bytes or repeated field`);
}

function responseKind(method: DescMethod, o: RestRoute): ResponseKind {
  if (o.responseBody === "") return { kind: "json" };
  const f = fieldByName(method, "output", o.responseBody, "response_body");
  if (f.fieldKind === "scalar" && f.scalar === ScalarType.STRING) return { kind: "text", field: f };
  if (f.fieldKind === "list") return { kind: "json-list", field: f };
  throw new Error(`${method.parent.typeName}.${method.name}: (rest).response_body field ${o.responseBody} must be a string or repeated field`);
}

function bodyLimit(body: BodyKind): number {
  switch (body.kind) {
    case "none":
      return NO_BODY_LIMIT;
    case "json-object":
    case "json-list":
      return DEFAULT_JSON_LIMIT;
    default:
      return maxBytesRule(body.field) ?? DEFAULT_TEXT_LIMIT;
  }
}

/** One endpoint per path (main and additional) of every method with a `(rest)` option. */
export function endpointsOf(methods: Iterable<DescMethod>): RestEndpoint[] {
  const out: RestEndpoint[] = [];
  for (const method of methods) {
    if (!hasOption(method, rest)) continue;
    const o = getOption(method, rest);
    const where = `${method.parent.typeName}.${method.name}`;
    if (method.methodKind !== "unary") throw new Error(`${where}: a REST route needs a unary method`);
    const verb = o.method.toUpperCase();
    if (!VERBS.has(verb)) throw new Error(`${where}: unknown REST verb ${JSON.stringify(o.method)}`);
    const body = bodyKind(method, o);
    const response = responseKind(method, o);
    const etagField = o.etagField ? fieldByName(method, "output", o.etagField, "etag_field") : undefined;
    const ifMatchField = o.ifMatchField ? fieldByName(method, "input", o.ifMatchField, "if_match_field") : undefined;
    if (ifMatchField && !(ifMatchField.fieldKind === "scalar" && ifMatchField.scalar === ScalarType.STRING)) {
      throw new Error(`${where}: (rest).if_match_field must be a string field`);
    }
    for (const template of [o.path, ...o.additionalPaths]) {
      out.push({
        verb,
        template,
        segments: parseSegments(method, template),
        method: method as DescMethodUnary,
        option: o,
        body,
        bodyLimit: bodyLimit(body),
        response,
        successStatus: o.successStatus || 200,
        etagField,
        ifMatchField,
        invalidMessage: o.invalidMessage || "Invalid request",
        invalidStatus: o.invalidStatus || 400,
        preconditionStatus: o.preconditionStatus || 409,
      });
    }
  }
  return out;
}

// "0" for a literal segment, "1" for a variable: sorting by this key puts,
// among templates of equal length, the one whose first differing segment is
// a literal ahead, so "/lb/{id}/certificates/{f}" beats "/lb/{a}/{b}/haproxy"
// for ".../certificates/haproxy".
const shapeKey = (e: RestEndpoint) => e.segments.map((s) => ("literal" in s ? "0" : "1")).join("");
const shapeOf = (e: RestEndpoint) => e.segments.map((s) => ("literal" in s ? s.literal : "{}")).join("/");

export class RouteTable {
  /** Endpoints by segment count, most specific first. */
  private readonly byLength = new Map<number, RestEndpoint[]>();

  constructor(readonly endpoints: RestEndpoint[]) {
    const shapes = new Map<string, RestEndpoint>();
    for (const e of endpoints) {
      const k = `${e.verb} ${shapeOf(e)}`;
      const other = shapes.get(k);
      if (other) throw new Error(`REST routes ${e.verb} ${other.template} and ${e.template} match the same requests`);
      shapes.set(k, e);
      const list = this.byLength.get(e.segments.length) ?? [];
      list.push(e);
      this.byLength.set(e.segments.length, list);
    }
    for (const list of this.byLength.values()) list.sort((a, b) => (shapeKey(a) < shapeKey(b) ? -1 : shapeKey(a) > shapeKey(b) ? 1 : 0));
  }

  /** `segments` are already percent-decoded. */
  match(verb: string, segments: string[]): Match {
    const allowed = new Set<string>();
    for (const e of this.byLength.get(segments.length) ?? []) {
      const params = new Map<DescField, string>();
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const s = e.segments[i];
        if ("literal" in s) ok = s.literal === segments[i];
        else if (segments[i] === "") ok = false;
        else params.set(s.field, segments[i]);
      }
      if (!ok) continue;
      if (e.verb === verb) return { kind: "found", endpoint: e, params };
      allowed.add(e.verb);
    }
    return allowed.size ? { kind: "wrong-verb", allowed: [...allowed].sort() } : { kind: "none" };
  }
}
