// Requests generated from the proto descriptors: every method of every
// amphora service, every field, with boundary and hostile values (path
// traversal in every string, so in every id and file name), sent through
// every front door (Connect binary and JSON, gRPC, gRPC-Web, REST).
import fc from "fast-check";
import { create, ScalarType, toBinary, toJson, type DescField, type DescMessage, type DescMethod, type Message } from "@bufbuild/protobuf";
import { AMPHORA_SERVICES } from "../src/agent/routes.js";
import { endpointsOf, type RestEndpoint } from "../src/transport/rest/route-table.js";

/** Every generated name that could become a file carries this, so a file written outside the state dir is found. */
export const MARK = "fzq";

const UUID = "11111111-2222-4333-8444-555555555555";
const hostileConstants = [
  "", " ", ".", "..", "../", "./", "/", "//", "../../../../etc/passwd", "/etc/passwd", "..\\..\\windows",
  "%2e%2e%2f%2e%2e%2fetc", "..%2f..%2f" + MARK, "a/../../" + MARK, `../${MARK}.pem`, `../../${MARK}/x.pem`,
  `/tmp/${MARK}.pem`, `${MARK}.pem`, `${MARK}.pem/../../${MARK}`, `${UUID}/../${MARK}`, `${UUID}/../../${MARK}`,
  "a\0b", `${MARK}\0.pem`, "\n", "\r\n", "\t", "-rf", "--help", "$(id)", "`id`", ";id", "|id", "' OR 1=1 --",
  "😀", "\u202e", "\ud800", "%00", "~", "~root", "CON", "x".repeat(256), "x".repeat(4097), UUID, UUID.toUpperCase(),
  "127.0.0.1", "0.0.0.0", "::1", "192.0.2.1", "198.51.100.7/24", "203.0.113.300", "fe80::1%lo", "00:00:00:00:00:00",
  "fa:16:3e:00:00:01", "FA-16-3E-00-00-01", "ff:ff:ff:ff:ff:ff", "lo", "eth0", "amphora-haproxy", "ACTIVE_STANDBY",
];
const traversal = fc
  .tuple(fc.nat(6), fc.constantFrom("", "/", "%2f", "\\"), fc.constantFrom(MARK, `${MARK}.pem`, `etc/${MARK}`, `${UUID}`))
  .map(([n, sep, tail]) => (sep === "" ? "../" : `..${sep}`).repeat(n) + tail);
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hostileConstants) },
  { weight: 2, arbitrary: traversal },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.ipV4() },
  { weight: 1, arbitrary: fc.ipV6() },
);

const i32 = fc.oneof(fc.constantFrom(0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 100, 99, 3600000, 3600001), fc.integer());
const u32 = fc.oneof(fc.constantFrom(0, 1, 2 ** 32 - 1, 65535, 65536, 68, 9000, 9001), fc.nat());
const i64 = fc.oneof(fc.constantFrom(0n, -1n, 1n, 2n ** 63n - 1n, -(2n ** 63n)), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
const u64 = fc.oneof(fc.constantFrom(0n, 1n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const dbl = fc.oneof(fc.constantFrom(0, -0, Number.NaN, Infinity, -Infinity, 1e308, -1e-308), fc.double());
const bytes = fc.oneof(fc.uint8Array({ maxLength: 48 }), fc.constantFrom(new Uint8Array(0), new TextEncoder().encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")));

function scalar(t: ScalarType): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING: return hostileString;
    case ScalarType.BYTES: return bytes;
    case ScalarType.BOOL: return fc.boolean();
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32: return i32;
    case ScalarType.UINT32: case ScalarType.FIXED32: return u32;
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: return i64;
    case ScalarType.UINT64: case ScalarType.FIXED64: return u64;
    case ScalarType.FLOAT: return fc.oneof(fc.constantFrom(0, Infinity, Number.NaN), fc.float());
    default: return dbl;
  }
}

function single(f: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case "scalar": return scalar(f.scalar);
    case "enum": return fc.constantFrom(...f.enum.values.map((v) => v.number), 999, -1);
    case "message": return depth < 3 ? messageInit(f.message, depth + 1) : fc.constant(undefined);
    case "list":
      return fc.array(
        f.listKind === "scalar" ? scalar(f.scalar) : f.listKind === "enum" ? fc.constantFrom(...f.enum.values.map((v) => v.number), 7) : depth < 3 ? messageInit(f.message, depth + 1) : fc.constant({}),
        { maxLength: 3 },
      );
    case "map":
      return fc.dictionary(hostileString, f.mapKind === "scalar" ? scalar(f.scalar) : f.mapKind === "enum" ? fc.constant(0) : depth < 3 ? messageInit(f.message, depth + 1) : fc.constant({}), { maxKeys: 2 });
  }
}

const cache = new Map<string, fc.Arbitrary<Record<string, unknown>>>();

/** An init object for create(): any subset of fields, oneofs as {case, value}. */
export function messageInit(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const key = `${desc.typeName}/${depth}`;
  let a = cache.get(key);
  if (a) return a;
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const m of desc.members) {
    if (m.kind === "oneof") {
      parts[m.localName] = fc.oneof(...m.fields.map((f) => single(f, depth).map((value) => ({ case: f.localName, value }))));
    } else {
      parts[m.localName] = single(m, depth);
    }
  }
  a = fc.record(parts, { requiredKeys: [] }) as fc.Arbitrary<Record<string, unknown>>;
  cache.set(key, a);
  return a;
}

export const DOORS = ["connect-proto", "connect-json", "grpc", "grpc-web", "rest"] as const;
export type Door = (typeof DOORS)[number];

export interface FuzzCase {
  method: DescMethod;
  door: Door;
  message: Message;
  /** How the encoded body is spoiled (binary doors) or the REST request is varied. */
  mutation: "none" | "truncate" | "garbage" | "flip" | "raw-path" | "junk-query";
  noise: Uint8Array;
  /** HTTP/2, or HTTP/1.1 (keep-alive), which reaches the server by another parser. */
  transport: "h2" | "h1";
  /** Protocol headers given values no client library would send ({} = none). */
  headers: Record<string, string>;
}

// Values for the headers the server reads itself (authority, deadlines,
// compression, protocol version). A deadline is never one a stream could
// live by (junk, zero, or too many digits), so every case ends quickly.
const ODD_HEADERS: Record<string, string[]> = {
  host: ["a b", "", "[::1", "x:99999", "é.example", "localhost:0", "..", "a/b", "user@evil", "h".repeat(300), "[zz]:1", "-", "a%20b"],
  "connect-timeout-ms": ["", "abc", "-5", "1.5", "12345678901", "0", "2S"],
  "grpc-timeout": ["", "abc", "-1S", "1.5S", "123456789S", "0m", "2"],
  "content-encoding": ["zstd", "gzip", "br, gzip", "identity", "x"],
  "connect-content-encoding": ["zstd", "gzip", "x"],
  "grpc-encoding": ["zstd", "gzip", "x"],
  "accept-encoding": ["*", "gzip;q=0", "x, y", ""],
  "connect-accept-encoding": ["zstd", ""],
  "grpc-accept-encoding": ["zstd", ""],
  "connect-protocol-version": ["2", "", "1.0"],
  te: ["gzip", ""],
};

const headerMutation: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc
      .subarray(Object.keys(ODD_HEADERS), { minLength: 1, maxLength: 3 })
      .chain((keys) => fc.tuple(...keys.map((k) => fc.constantFrom(...ODD_HEADERS[k]!).map((v) => [k, v] as const))))
      .map((pairs) => Object.fromEntries(pairs)),
  },
);

export const METHODS: DescMethod[] = AMPHORA_SERVICES.flatMap((s) => s.methods);
export const REST: Map<DescMethod, RestEndpoint> = new Map(endpointsOf(METHODS).map((e) => [e.method as DescMethod, e]));

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.constantFrom(...METHODS).chain((method) =>
  fc.record({
    method: fc.constant(method),
    door: fc.constantFrom(...DOORS.filter((d) => d !== "rest" || REST.has(method))),
    message: messageInit(method.input).map((init) => {
      try {
        return create(method.input, init as never) as Message;
      } catch {
        return create(method.input) as Message;
      }
    }),
    mutation: fc.constantFrom("none", "none", "none", "truncate", "garbage", "flip", "raw-path", "junk-query"),
    noise: fc.uint8Array({ minLength: 1, maxLength: 32 }),
    transport: fc.constantFrom("h2", "h2", "h1"),
    headers: headerMutation,
  }),
);

/** The encoded message, with values no encoder would write replaced (NaN, lone surrogates) as they are. */
export function encodeBinary(c: FuzzCase): Buffer {
  let b: Buffer;
  try {
    b = Buffer.from(toBinary(c.method.input, c.message as never));
  } catch {
    b = Buffer.alloc(0);
  }
  switch (c.mutation) {
    case "truncate": return b.subarray(0, Math.floor(b.length / 2));
    case "garbage": return Buffer.from(c.noise);
    case "flip": {
      const x = Buffer.from(b);
      if (x.length) x[c.noise[0]! % x.length] ^= 0xff;
      return x;
    }
    default: return b;
  }
}

export function encodeJson(c: FuzzCase): string {
  let s: string;
  try {
    s = JSON.stringify(toJson(c.method.input, c.message as never));
  } catch {
    s = "{}";
  }
  if (c.mutation === "truncate") return s.slice(0, Math.floor(s.length / 2));
  if (c.mutation === "garbage") return Buffer.from(c.noise).toString("latin1");
  return s;
}
