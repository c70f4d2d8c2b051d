// GET /metrics on the agent port (behind the same mutual TLS as the RPCs).
import type { ServerResponse } from "node:http";
import type { FallbackHandler } from "../agent/server.js";
import type { AgentMetrics } from "./agent-metrics.js";

/** Answers GET /metrics (query string allowed); leaves every other request to the next fallback. */
export function metricsFallback(metrics: AgentMetrics): FallbackHandler {
  return async (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) return false;
    const body = await metrics.registry.metrics();
    (res as ServerResponse).writeHead(200, {
      "content-type": metrics.registry.contentType,
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  };
}
