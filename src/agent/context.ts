// Everything a service implementation needs, passed explicitly (no globals).
// Each domain module adds its field here when it lands.
import type { Logger } from "../log.js";
import type { ConfigStore } from "./config-store.js";
import type { TlsControl } from "./tls.js";

export interface AgentContext {
  logger: Logger;
  config: ConfigStore;
  tls: TlsControl;
  agentVersion: string;
}
