// Messages to and from the JSON Octavia controllers send and expect:
// snake_case proto field names, every field present (a counter at 0 is sent
// as 0), and 64-bit integers as JSON numbers as the Python agent sends them
// (proto3 JSON would send them as strings).
import { fromJson, ScalarType, toJson, type DescField, type DescMessage, type JsonValue, type Message } from "@bufbuild/protobuf";

const INT64 = new Set<ScalarType>([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

type Out = null | boolean | number | string | bigint | Out[] | { [k: string]: Out };

/** Replaces 64-bit integer strings with bigints, following the descriptor. */
function numbersFor(desc: DescMessage, json: JsonValue): Out {
  // Well-known types have their own JSON forms (Timestamp is a string).
  if (desc.typeName.startsWith("google.protobuf.") || json === null || typeof json !== "object" || Array.isArray(json)) return json as Out;
  const out: { [k: string]: Out } = {};
  for (const [k, v] of Object.entries(json)) {
    const f = desc.fields.find((x) => x.name === k);
    out[k] = f ? fieldValue(f, v) : (v as Out);
  }
  return out;
}

function scalarValue(t: ScalarType | undefined, v: JsonValue): Out {
  if (t !== undefined && INT64.has(t) && typeof v === "string" && /^-?\d+$/.test(v)) return BigInt(v);
  return v as Out;
}

function fieldValue(f: DescField, v: JsonValue): Out {
  switch (f.fieldKind) {
    case "scalar":
      return scalarValue(f.scalar, v);
    case "message":
      return numbersFor(f.message, v);
    case "list":
      if (!Array.isArray(v)) return v as Out;
      if (f.listKind === "message") return v.map((x) => numbersFor(f.message, x));
      if (f.listKind === "scalar") return v.map((x) => scalarValue(f.scalar, x));
      return v as Out;
    case "map": {
      if (v === null || typeof v !== "object" || Array.isArray(v)) return v as Out;
      const o: { [k: string]: Out } = {};
      for (const [k, x] of Object.entries(v)) {
        o[k] = f.mapKind === "message" ? numbersFor(f.message, x) : f.mapKind === "scalar" ? scalarValue(f.scalar, x) : (x as Out);
      }
      return o;
    }
    default:
      return v as Out;
  }
}

/** JSON.stringify that writes bigints as plain JSON numbers, digits intact. */
export function stringify(v: Out): string {
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return `[${v.map(stringify).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${stringify(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

const writeOptions = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

export function messageToJson(desc: DescMessage, msg: Message): string {
  return stringify(numbersFor(desc, toJson(desc, msg, writeOptions)));
}

/** A repeated field of a message as a JSON array. */
export function listFieldToJson(desc: DescMessage, msg: Message, field: DescField): string {
  const whole = numbersFor(desc, toJson(desc, msg, writeOptions)) as { [k: string]: Out };
  return stringify(whole[field.name] ?? []);
}

/** Parses a JSON object onto a request; unknown keys are ignored as Octavia sends extras. */
export function messageFromJson(desc: DescMessage, json: JsonValue): Message {
  return fromJson(desc, json, { ignoreUnknownFields: true });
}
