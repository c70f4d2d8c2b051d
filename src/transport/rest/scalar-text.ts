// Text from a URL (a path segment or a query parameter) turned into the value
// of a request field, checked against the field's protobuf type and range,
// from the descriptor, for every scalar kind and enums. A value the field
// cannot hold is the caller's mistake: it must never reach the serializer
// (where it used to surface as a 500 "invalid uint32").
import { ScalarType, type DescField } from "@bufbuild/protobuf";

export type ScalarText = { ok: true; value: unknown } | { ok: false; expected: string };

const INT = /^[-+]?\d+$/;
// Decimal notation only (what a URL carries): no hex, no "Infinity".
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const FLOAT32_MAX = 3.4028234663852886e38;

const INTEGER_RANGES: Partial<Record<ScalarType, [bigint, bigint, string]>> = {
  [ScalarType.INT32]: [-(2n ** 31n), 2n ** 31n - 1n, "int32"],
  [ScalarType.SINT32]: [-(2n ** 31n), 2n ** 31n - 1n, "sint32"],
  [ScalarType.SFIXED32]: [-(2n ** 31n), 2n ** 31n - 1n, "sfixed32"],
  [ScalarType.UINT32]: [0n, 2n ** 32n - 1n, "uint32"],
  [ScalarType.FIXED32]: [0n, 2n ** 32n - 1n, "fixed32"],
  [ScalarType.INT64]: [-(2n ** 63n), 2n ** 63n - 1n, "int64"],
  [ScalarType.SINT64]: [-(2n ** 63n), 2n ** 63n - 1n, "sint64"],
  [ScalarType.SFIXED64]: [-(2n ** 63n), 2n ** 63n - 1n, "sfixed64"],
  [ScalarType.UINT64]: [0n, 2n ** 64n - 1n, "uint64"],
  [ScalarType.FIXED64]: [0n, 2n ** 64n - 1n, "fixed64"],
};
const IS_64 = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64, ScalarType.UINT64, ScalarType.FIXED64]);

/**
 * The value `raw` gives field `f`, or what the field expects. Enums take their
 * value's short name in any case (`start`), its full name
 * (`LOAD_BALANCER_ACTION_START`) or its number; the zero value
 * (unspecified) is not a choice.
 */
export function scalarFromText(f: DescField, raw: string): ScalarText {
  if (f.fieldKind === "enum") {
    const values = f.enum.values.filter((x) => x.number !== 0);
    const v = values.find((x) => x.localName.toLowerCase() === raw.toLowerCase() || x.name === raw || (INT.test(raw) && BigInt(raw) === BigInt(x.number)));
    if (v) return { ok: true, value: v.number };
    return { ok: false, expected: `one of ${values.map((x) => x.localName.toLowerCase()).join(", ")}` };
  }
  if (f.fieldKind !== "scalar") return { ok: false, expected: "no value (not a scalar field)" };
  switch (f.scalar) {
    case ScalarType.STRING:
      return { ok: true, value: raw };
    case ScalarType.BYTES:
      return { ok: true, value: new TextEncoder().encode(raw) };
    case ScalarType.BOOL:
      return raw === "true" || raw === "false" ? { ok: true, value: raw === "true" } : { ok: false, expected: "true or false" };
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const n = DECIMAL.test(raw) ? Number(raw) : NaN;
      const max = f.scalar === ScalarType.FLOAT ? FLOAT32_MAX : Number.MAX_VALUE;
      if (Number.isFinite(n) && Math.abs(n) <= max) return { ok: true, value: n };
      return { ok: false, expected: `a finite number (${f.scalar === ScalarType.FLOAT ? "float" : "double"})` };
    }
    default: {
      const [min, max, type] = INTEGER_RANGES[f.scalar]!;
      const expected = `an integer from ${min} to ${max} (${type})`;
      if (!INT.test(raw)) return { ok: false, expected };
      const n = BigInt(raw);
      if (n < min || n > max) return { ok: false, expected };
      return { ok: true, value: IS_64.has(f.scalar) ? n : Number(n) };
    }
  }
}
