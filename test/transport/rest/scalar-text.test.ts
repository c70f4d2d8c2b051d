// Unit: path and query text checked against the field's protobuf type and
// range, for every scalar kind (fields taken from real descriptors: the
// well-known wrappers and the agent's own request messages).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ScalarType, type DescField } from "@bufbuild/protobuf";
import {
  BoolValueSchema, BytesValueSchema, DoubleValueSchema, FloatValueSchema, Int32ValueSchema, Int64ValueSchema,
  StringValueSchema, UInt32ValueSchema, UInt64ValueSchema,
} from "@bufbuild/protobuf/wkt";
import { ControlLoadBalancerRequestSchema, LoadBalancerAction } from "../../../src/gen/amphora/v1/load_balancer_pb.js";
import { scalarFromText } from "../../../src/transport/rest/scalar-text.js";

const valueOf = (s: { fields: DescField[] }) => s.fields[0]!;
/** Kinds no well-known message uses: the same descriptor shape with another scalar type. */
const kind = (scalar: ScalarType) => ({ ...valueOf(Int32ValueSchema), scalar }) as DescField;

function ok(f: DescField, raw: string, value: unknown) {
  const r = scalarFromText(f, raw);
  assert.deepEqual(r, { ok: true, value }, raw);
}
function bad(f: DescField, raw: string, expected: RegExp) {
  const r = scalarFromText(f, raw);
  assert.equal(r.ok, false, `${raw} should be refused`);
  if (!r.ok) assert.match(r.expected, expected, raw);
}

test("32-bit integers: ranges of int32/sint32/sfixed32 and uint32/fixed32; no fractions, exponents, hex or blanks", () => {
  for (const f of [valueOf(Int32ValueSchema), kind(ScalarType.SINT32), kind(ScalarType.SFIXED32)]) {
    ok(f, "-2147483648", -2147483648);
    ok(f, "2147483647", 2147483647);
    bad(f, "2147483648", /from -2147483648 to 2147483647/);
    bad(f, "-2147483649", /from -2147483648/);
  }
  for (const f of [valueOf(UInt32ValueSchema), kind(ScalarType.FIXED32)]) {
    ok(f, "0", 0);
    ok(f, "4294967295", 4294967295);
    for (const raw of ["-1", "4294967296", "99999999999", "1.5", "1e3", "0x10", "", " 1", "1 ", "NaN"]) bad(f, raw, /from 0 to 4294967295/);
  }
});

test("64-bit integers are bigints, exact at both ends of their range", () => {
  for (const f of [valueOf(Int64ValueSchema), kind(ScalarType.SINT64), kind(ScalarType.SFIXED64)]) {
    ok(f, "-9223372036854775808", -(2n ** 63n));
    ok(f, "9223372036854775807", 2n ** 63n - 1n);
    bad(f, "9223372036854775808", /to 9223372036854775807/);
  }
  for (const f of [valueOf(UInt64ValueSchema), kind(ScalarType.FIXED64)]) {
    ok(f, "18446744073709551615", 2n ** 64n - 1n);
    bad(f, "18446744073709551616", /from 0 to 18446744073709551615/);
    bad(f, "-1", /from 0/);
    bad(f, "1.0", /integer/);
  }
});

test("floats and doubles: finite decimal numbers, float within float32's range", () => {
  ok(valueOf(DoubleValueSchema), "1.5", 1.5);
  ok(valueOf(DoubleValueSchema), "-2e10", -2e10);
  ok(valueOf(FloatValueSchema), "3.4e38", 3.4e38);
  bad(valueOf(FloatValueSchema), "3.5e38", /float/);
  for (const raw of ["Infinity", "NaN", "1e400", "0x1", "", "1,5"]) bad(valueOf(DoubleValueSchema), raw, /finite number/);
});

test("bools, strings, bytes and enums", () => {
  ok(valueOf(BoolValueSchema), "true", true);
  ok(valueOf(BoolValueSchema), "false", false);
  bad(valueOf(BoolValueSchema), "1", /true or false/);
  ok(valueOf(StringValueSchema), "any text", "any text");
  ok(valueOf(BytesValueSchema), "ab", new TextEncoder().encode("ab"));
  const action = ControlLoadBalancerRequestSchema.fields.find((f) => f.name === "action")!;
  ok(action, "reload", LoadBalancerAction.RELOAD);
  ok(action, "RELOAD", LoadBalancerAction.RELOAD);
  ok(action, "LOAD_BALANCER_ACTION_RELOAD", LoadBalancerAction.RELOAD);
  ok(action, String(LoadBalancerAction.RELOAD), LoadBalancerAction.RELOAD);
  bad(action, "unspecified", /one of start, stop, reload/);
  bad(action, "0", /one of/);
  bad(action, "99", /one of/);
});
