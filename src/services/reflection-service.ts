// gRPC server reflection (v1) over the agent's own descriptors, so grpcurl
// and `buf curl` work without a local copy of the schema.
import type { ServiceImpl } from "@connectrpc/connect";
import { create, createRegistry, toBinary, type DescFile, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection, ServerReflectionResponseSchema, type ServerReflectionRequest,
} from "../gen/grpc/reflection/v1/reflection_pb.js";

/** A file and everything it imports, imports first. */
function withDependencies(file: DescFile, out: DescFile[] = [], seen = new Set<string>()): DescFile[] {
  if (seen.has(file.name)) return out;
  seen.add(file.name);
  for (const d of file.dependencies) withDependencies(d, out, seen);
  out.push(file);
  return out;
}

export function reflectionService(services: DescService[]): ServiceImpl<typeof ServerReflection> {
  const byName = new Map(services.flatMap((s) => withDependencies(s.file)).map((f) => [f.name, f]));
  const registry = createRegistry(...byName.values());
  const fileResponse = (file: DescFile) => ({
    case: "fileDescriptorResponse" as const,
    value: { fileDescriptorProto: withDependencies(file).map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
  });
  const notFound = (what: string) => ({ case: "errorResponse" as const, value: { errorCode: 5, errorMessage: `${what} not found` } });

  type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];
  function answer(req: ServerReflectionRequest): Answer {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: services.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename": {
        const f = byName.get(r.value);
        return f ? fileResponse(f) : notFound(`file ${r.value}`);
      }
      case "fileContainingSymbol": {
        // A method is asked for as "pkg.Service.Method": look up its service.
        const name = r.value.replace(/^\./, "");
        const desc = registry.get(name) ?? registry.get(name.slice(0, name.lastIndexOf(".")));
        return desc && "file" in desc ? fileResponse(desc.file) : notFound(`symbol ${name}`);
      }
      case "fileContainingExtension": {
        const msg = registry.getMessage(r.value.containingType);
        const ext = msg && registry.getExtensionFor(msg, r.value.extensionNumber);
        return ext ? fileResponse(ext.file) : notFound(`extension ${r.value.containingType}(${r.value.extensionNumber})`);
      }
      case "allExtensionNumbersOfType": {
        const numbers: number[] = [];
        for (const d of registry) if (d.kind === "extension" && d.extendee.typeName === r.value) numbers.push(d.number);
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: numbers } };
      }
      default:
        return { case: "errorResponse", value: { errorCode: 3, errorMessage: "empty reflection request" } };
    }
  }

  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer(req) });
      }
    },
  };
}
