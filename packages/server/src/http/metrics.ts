import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per server instance (tests run several servers in one process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'edgeplane_' });
  // prom-client also exports these sums of the per-type gauges as gauges named *_total, which
  // Prometheus reserves for counters (`promtool check metrics` rejects them); the per-type gauges
  // (edgeplane_nodejs_active_handles{type}, ...) carry the same numbers.
  for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`edgeplane_nodejs_${name}`);
  return {
    registry,
    httpRequests: new Counter({
      name: 'edgeplane_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'edgeplane_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    agentsConnected: new Gauge({ name: 'edgeplane_agents_connected', help: 'Agent channels open on this server', registers: [registry] }),
    agentChannelLimit: new Gauge({
      name: 'edgeplane_agent_channel_limit',
      help: 'Agent channels this server accepts at once (its open-file limit less a reserve); more are refused',
      registers: [registry],
    }),
    openFileLimit: new Gauge({ name: 'edgeplane_open_file_limit', help: 'Soft open-file limit the server runs under', registers: [registry] }),
    agentMessages: new Counter({
      name: 'edgeplane_agent_messages_total',
      help: 'Agent messages received by type (invalid and malformed included)',
      labelNames: ['type'],
      registers: [registry],
    }),
    agentEventsDropped: new Counter({
      name: 'edgeplane_agent_events_dropped_total',
      help: 'Agent events dropped because the host sent them faster than its event rate limit',
      registers: [registry],
    }),
    storeCheckDuration: new Gauge({
      name: 'edgeplane_store_check_duration_seconds',
      help: 'How long the last readiness check of the store took (outside the query pool)',
      registers: [registry],
    }),
    storeCheckLastSuccess: new Gauge({
      name: 'edgeplane_store_check_last_success_timestamp_seconds',
      help: 'When a readiness check of the store last succeeded (Unix time)',
      registers: [registry],
    }),
    storeCheckFailures: new Counter({
      name: 'edgeplane_store_check_failures_total',
      help: 'Readiness checks of the store that failed or timed out',
      registers: [registry],
    }),
    registrations: new Counter({
      name: 'edgeplane_registrations_total',
      help: 'Registration attempts by result (created, existing, or the error code)',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
