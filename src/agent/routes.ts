// Which implementation serves which service.
import type { ConnectRouter } from "@connectrpc/connect";
import { SystemService } from "../gen/amphora/v1/system_pb.js";
import { LoadBalancerService } from "../gen/amphora/v1/load_balancer_pb.js";
import { CertificateService } from "../gen/amphora/v1/certificate_pb.js";
import { NetworkService } from "../gen/amphora/v1/network_pb.js";
import { KeepalivedService } from "../gen/amphora/v1/keepalived_pb.js";
import { StatsService } from "../gen/amphora/v1/stats_pb.js";
import { EventService } from "../gen/amphora/v1/events_pb.js";
import type { AgentContext } from "../services/context.js";
import { systemService } from "../services/system-service.js";
import { networkService } from "../services/network-service.js";
import { statsService } from "../services/stats-service.js";
import { eventService } from "../services/event-service.js";
import { keepalivedService } from "../services/keepalived-service.js";
import { loadBalancerService } from "../services/load-balancer-service.js";
import { certificateService } from "../services/certificate-service.js";
import { reflectionService } from "../services/reflection-service.js";
import { healthService } from "../services/health-service.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";

/** The amphora services; reflection and health describe these. */
export const AMPHORA_SERVICES = [
  SystemService, LoadBalancerService, CertificateService, NetworkService, KeepalivedService, StatsService, EventService,
];

export function agentRoutes(ctx: AgentContext) {
  return (router: ConnectRouter) => {
    router.service(SystemService, systemService(ctx, ctx.lbs));
    router.service(LoadBalancerService, loadBalancerService(ctx.lbs, ctx.lvs, ctx.events));
    router.service(CertificateService, certificateService(ctx.certs));
    router.service(NetworkService, networkService(ctx));
    router.service(KeepalivedService, keepalivedService(ctx));
    router.service(StatsService, statsService(ctx.monitoring));
    router.service(EventService, eventService(ctx.events, ctx.monitoring.keepaliveMs));
    router.service(ServerReflection, reflectionService([...AMPHORA_SERVICES, Health]));
    router.service(Health, healthService(AMPHORA_SERVICES));
  };
}
