// Writes the descriptors of buf/validate/validate.proto (and what it
// imports) as a FileDescriptorSet, so protoc can compile our protos against
// them without a copy of their source in this repository.
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescFile } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const out = process.argv[2] ?? "build/deps.binpb";
const ordered: DescFile[] = [];
const seen = new Set<string>();
// Imports first: protoc wants every dependency before the file that uses it.
function visit(file: DescFile): void {
  if (seen.has(file.name)) return;
  seen.add(file.name);
  for (const dep of file.dependencies) visit(dep);
  ordered.push(file);
}
visit(file_buf_validate_validate);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: ordered.map((f) => f.proto) })));
console.log(`wrote ${out}: ${ordered.map((f) => f.name).join(", ")}`);
