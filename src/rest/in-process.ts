// Calls RPCs in this process through a Connect router built from the same
// routes and the same interceptors as the network server (logging, domain
// error mapping, then protovalidate), so a REST call runs exactly the code
// path a Connect or gRPC call runs. Only the framing is in-memory.
import {
  createConnectRouter, createContextValues, type ConnectRouter, type ContextValues, type Interceptor, type Transport,
} from "@connectrpc/connect";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { createAsyncIterable, type UniversalClientFn, type UniversalHandler } from "@connectrpc/connect/protocol";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { DescMethod } from "@bufbuild/protobuf";

// Carries a call's id from the transport to the handler; the context values
// themselves never leave this process, and nothing from the network can set
// this header (the REST layer builds the header set).
const CALL_HEADER = "x-amphora-in-process-call";

export interface InProcess {
  transport: Transport;
  /** Every unary and streaming method the router serves. */
  methods: DescMethod[];
  /** Context values for a call; pass the returned header to the transport. */
  callHeader(values: ContextValues): { header: Headers; release(): void };
}

export function createInProcess(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): InProcess {
  // Same order as src/agent/server.ts: the given interceptors wrap validation,
  // so a validation failure is logged like any other failed call.
  const router = createConnectRouter({ interceptors: [...interceptors, createValidateInterceptor()], grpc: false, grpcWeb: false, connect: true });
  routes(router);
  const handlers = new Map<string, UniversalHandler>();
  for (const h of router.handlers) handlers.set(h.requestPath, h);
  const pending = new Map<string, ContextValues>();
  let next = 0;

  const httpClient: UniversalClientFn = async (req) => {
    const path = new URL(req.url).pathname;
    const handler = handlers.get(path);
    if (!handler) throw new Error(`in-process call to unknown path ${path}`);
    const id = req.header.get(CALL_HEADER) ?? "";
    req.header.delete(CALL_HEADER);
    const res = await handler({
      httpVersion: "2.0",
      method: req.method,
      url: req.url,
      header: req.header,
      body: req.body ?? createAsyncIterable([]),
      signal: req.signal ?? new AbortController().signal,
      contextValues: pending.get(id) ?? createContextValues(),
    });
    return {
      status: res.status,
      header: new Headers(res.header),
      body: res.body ?? createAsyncIterable([]),
      trailer: new Headers(res.trailer),
    };
  };

  const transport = createTransport({
    httpClient,
    baseUrl: "https://in-process",
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    readMaxBytes: Number.MAX_SAFE_INTEGER,
    writeMaxBytes: Number.MAX_SAFE_INTEGER,
  });

  const seen = new Set<DescMethod>();
  for (const h of router.handlers) seen.add(h.method);

  return {
    transport,
    methods: [...seen],
    callHeader(values) {
      const id = String(++next);
      pending.set(id, values);
      const header = new Headers({ [CALL_HEADER]: id });
      return { header, release: () => pending.delete(id) };
    },
  };
}

/**
 * Registers the services once and replays the registrations into every
 * router, so the network server and the REST layer share the very same
 * implementation objects (and whatever locks or caches they hold).
 */
export function registerOnce(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void {
  type Call = { kind: "service" | "rpc"; args: unknown[] };
  const calls: Call[] = [];
  const recorder = {
    handlers: [],
    service(...args: unknown[]) {
      calls.push({ kind: "service", args });
      return recorder;
    },
    rpc(...args: unknown[]) {
      calls.push({ kind: "rpc", args });
      return recorder;
    },
  };
  routes(recorder as unknown as ConnectRouter);
  return (router) => {
    for (const c of calls) {
      if (c.kind === "service") (router.service as (...a: unknown[]) => unknown)(...c.args);
      else (router.rpc as (...a: unknown[]) => unknown)(...c.args);
    }
  };
}
