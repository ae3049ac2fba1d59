/**
 * The scaler's CloudWatch metrics, as Embedded Metric Format log lines (Powertools Metrics): no
 * PutMetricData call, no extra IAM. Namespace CiAgentAutoscaler, dimension Queue. The alarms and
 * the dashboard in infra/aws/ read these names.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { ScalerMetrics } from './ports.js';

export const METRICS_NAMESPACE = 'CiAgentAutoscaler';

export function createScalerMetrics(): ScalerMetrics {
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: 'scaler' });
  return {
    decision(d, reserved, latencyMs) {
      metrics.addDimension('Queue', d.queue);
      metrics.addMetric('Pending', MetricUnit.Count, d.pending);
      metrics.addMetric('Running', MetricUnit.Count, d.running);
      metrics.addMetric('InFlight', MetricUnit.Count, d.inFlight + reserved);
      metrics.addMetric('MaxAgents', MetricUnit.Count, d.maxAgents);
      metrics.addMetric('AgentsRequested', MetricUnit.Count, reserved);
      metrics.addMetric('DecisionLatencyMs', MetricUnit.Milliseconds, latencyMs);
      metrics.publishStoredMetrics();
    },
    stops(queue, stopped, failed) {
      metrics.addDimension('Queue', queue);
      metrics.addMetric('AgentsStopped', MetricUnit.Count, stopped);
      metrics.addMetric('AgentStopFailures', MetricUnit.Count, failed);
      metrics.publishStoredMetrics();
    },
    backoff(queue, step, startFailures) {
      metrics.addDimension('Queue', queue);
      metrics.addMetric('BackoffStep', MetricUnit.Count, step);
      metrics.addMetric('AgentStartFailures', MetricUnit.Count, startFailures);
      metrics.publishStoredMetrics();
      // Also without the Queue dimension: one alarm (infra/aws/alarms.yml) covers every queue.
      if (startFailures > 0) {
        metrics.addMetric('AgentStartFailures', MetricUnit.Count, startFailures);
        metrics.publishStoredMetrics();
      }
    },
  };
}
