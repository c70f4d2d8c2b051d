// gRPC health checking: the agent process is SERVING once it listens; a
// named service is SERVING when the agent registered it.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../gen/grpc/health/v1/health_pb.js";

export function healthService(services: DescService[]): ServiceImpl<typeof Health> {
  const known = new Set(services.map((s) => s.typeName));
  const status = (name: string) => (name === "" || known.has(name) ? Status.SERVING : Status.SERVICE_UNKNOWN);
  return {
    check(req) {
      const s = status(req.service);
      if (s === Status.SERVICE_UNKNOWN) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return { status: s };
    },
    async *watch(req, ctx) {
      ctx.signal.throwIfAborted(); // already aborted: "abort" will not fire again
      yield { status: status(req.service) };
      // Status never changes while the process runs; hold the stream open
      // until the caller goes away or the agent shuts down.
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  };
}
