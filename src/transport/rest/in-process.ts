// Calls RPCs in this process: the same implementation objects as the
// network server (see registerOnce), wrapped in the same interceptors in the
// same order (logging and error mapping, then protovalidate), with a
// HandlerContext of the same shape Connect's handlers make. So a REST call
// runs exactly the code a Connect or gRPC call runs from the interceptors
// inward; what it skips is only the wire: no serializing the request to
// bytes and parsing it back, no envelope, no header sets (a profile of the
// old in-process Connect transport put ~45 % of a REST call's CPU there).
import {
  ConnectError, Code, createContextValues, createMethodImplSpec, createServiceImplSpec,
  type ConnectRouter, type ContextValues, type HandlerContext, type Interceptor, type MethodImplSpec, type UnaryRequest, type UnaryResponse,
} from "@connectrpc/connect";
import { lazyValidateInterceptor } from "../lazy-validate.js";
import { LazyAbort } from "./lazy-abort.js";
import { create, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";

let completed: ConnectError | undefined;
/** The reason a call's signal is aborted with when it has ended (made once, when first needed). */
export function completedReason(): ConnectError {
  return (completed ??= new ConnectError("the call has completed", Code.Canceled));
}

/**
 * The HandlerContext of a REST call: what Connect's createHandlerContext
 * makes, with one abort signal instead of three linked ones (REST calls have
 * no deadline), made only if something reads it (see LazyAbort), as are the
 * header sets.
 */
function restContext(method: DescMethod, values: ContextValues, abort: LazyAbort): HandlerContext {
  let reqH: Headers | undefined;
  let resH: Headers | undefined;
  let resT: Headers | undefined;
  return {
    method: method as never,
    service: method.parent,
    get signal() {
      return abort.signal;
    },
    timeoutMs: () => undefined,
    requestMethod: "POST",
    protocolName: "rest",
    url: `/${method.parent.typeName}/${method.name}`,
    get requestHeader() {
      return (reqH ??= new Headers());
    },
    get responseHeader() {
      return (resH ??= new Headers());
    },
    get responseTrailer() {
      return (resT ??= new Headers());
    },
    values,
  };
}

type AnyUnary = (req: UnaryRequest<DescMessage, DescMessage>) => Promise<UnaryResponse<DescMessage, DescMessage>>;

export interface InProcess {
  /** Every unary and streaming method the routes register. */
  methods: DescMethod[];
  /**
   * Calls a unary method with a request message; resolves to its response
   * message or rejects with the ConnectError the interceptors made of the
   * failure. The call's context signal is `abort`'s: abort it when the
   * client goes away; the call aborts it (reason completedReason()) when it ends.
   */
  call(method: DescMethod, input: Message, values?: ContextValues, abort?: LazyAbort): Promise<Message>;
}

export function createInProcess(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): InProcess {
  // Same order as src/transport/server.ts: the given interceptors wrap validation,
  // so a validation failure is logged like any other failed call.
  const chain = [...interceptors, lazyValidateInterceptor()];
  const specs = new Map<DescMethod, MethodImplSpec>();
  const recorder = {
    handlers: [],
    service(service: DescService, impl: Record<string, unknown>) {
      for (const m of Object.values(createServiceImplSpec(service as never, impl as never).methods)) specs.set(m.method, m as MethodImplSpec);
      return recorder;
    },
    rpc(method: DescMethod, impl: unknown) {
      specs.set(method, createMethodImplSpec(method as never, impl as never) as MethodImplSpec);
      return recorder;
    },
  };
  routes(recorder as unknown as ConnectRouter);
  const reversed = [...chain].reverse();

  return {
    methods: [...specs.keys()],
    async call(method, input, values = createContextValues(), abort = new LazyAbort()) {
      const spec = specs.get(method);
      if (spec?.kind !== "unary") throw new ConnectError(`${method.parent.typeName}.${method.name} is not a unary method served here`, Code.Unimplemented);
      const impl = spec.impl as (m: Message, ctx: HandlerContext) => unknown;
      const ctx = restContext(method, values, abort);
      let next: AnyUnary = async (req) => {
        // As Connect does: an implementation may return a message or its init shape.
        const out = create(method.output, (await impl(req.message as Message, ctx)) as never);
        // Header sets as getters: reading them makes them (see restContext).
        return {
          stream: false, service: method.parent, method: method as never, message: out, contextValues: req.contextValues,
          get header() {
            return ctx.responseHeader;
          },
          get trailer() {
            return ctx.responseTrailer;
          },
        };
      };
      for (const i of reversed) next = i(next as never) as unknown as AnyUnary;
      try {
        const req = {
          stream: false as const, service: method.parent, method, requestMethod: "POST", url: ctx.url,
          get signal() {
            return abort.signal;
          },
          get header() {
            return ctx.requestHeader;
          },
          contextValues: values, message: input,
        };
        return (await next(req as never)).message as Message;
      } catch (e) {
        throw ConnectError.from(e);
      } finally {
        // Connect aborts a call's signal when it completes, error or not
        // (with a reason made once: a default one costs a DOMException per call).
        abort.abortWith(completedReason);
      }
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
