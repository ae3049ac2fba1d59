// CloudFormation resources that depend on the list of queues: one "limiter at MAX" alarm per
// queue and the dashboard. serverless.yml includes this file under `resources`; osls calls the
// exported function with its variable resolver. CommonJS (.cjs) because osls require()s it.
'use strict';

const NAMESPACE = 'CiAgentAutoscaler'; // functions/scaler/metrics.ts METRICS_NAMESPACE

/** Logical-id-safe suffix for a queue name (letters and digits only, plus a short hash). */
function idFor(queue) {
  const clean = queue.replace(/[^A-Za-z0-9]/g, '');
  let h = 0;
  for (const c of queue) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${clean.charAt(0).toUpperCase()}${clean.slice(1)}${h.toString(36)}`;
}

/**
 * A CloudFormation string from a template with @@NAME@@ markers replaced by intrinsic values
 * (Fn::Join, not Fn::Sub: `${...}` would be taken for a Serverless variable).
 */
function join(template, values) {
  const parts = template.split(/@@([A-Za-z]+)@@/);
  const out = parts.map((p, i) => (i % 2 === 1 ? values[p] : p)).filter((p) => p !== '');
  return { 'Fn::Join': ['', out] };
}

function limiterAlarm(queue, minutes) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: `Queue "${queue}" has had MAX_AGENTS agents in flight for ${minutes} minutes: CI jobs wait for capacity (README, Alarms).`,
      Metrics: [
        {
          Id: 'inflight',
          ReturnData: false,
          MetricStat: {
            Metric: { Namespace: NAMESPACE, MetricName: 'InFlight', Dimensions: [{ Name: 'Queue', Value: queue }] },
            Period: 60,
            Stat: 'Minimum',
          },
        },
        {
          Id: 'max',
          ReturnData: false,
          MetricStat: {
            Metric: { Namespace: NAMESPACE, MetricName: 'MaxAgents', Dimensions: [{ Name: 'Queue', Value: queue }] },
            Period: 60,
            Stat: 'Maximum',
          },
        },
        { Id: 'atmax', Label: 'limiter at MAX (1 = yes)', Expression: 'IF(inflight >= max, 1, 0)', ReturnData: true },
      ],
      EvaluationPeriods: minutes,
      DatapointsToAlarm: minutes,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: 'AlarmTopic' }],
      OKActions: [{ Ref: 'AlarmTopic' }],
    },
  };
}

function dashboard(queues) {
  const perQueue = (metric, stat, extra = {}) =>
    queues.map((q) => [NAMESPACE, metric, 'Queue', q, { stat, label: `${q} ${metric}`, ...extra }]);
  const widget = (title, metrics, x, y, extra = {}) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: '@@Region@@', view: 'timeSeries', period: 60, metrics, ...extra },
  });
  const body = {
    widgets: [
      widget(
        'Agents: pending CI jobs, running, in flight, MAX',
        [
          ...perQueue('Pending', 'Maximum'),
          ...perQueue('Running', 'Maximum'),
          ...perQueue('InFlight', 'Maximum'),
          ...perQueue('MaxAgents', 'Maximum'),
        ],
        0,
        0,
      ),
      widget(
        'Agents created and stopped (surplus of a warm pool) per minute',
        [...perQueue('AgentsRequested', 'Sum'), ...perQueue('AgentsStopped', 'Sum')],
        12,
        0,
      ),
      widget(
        'Decision latency (ms)',
        [...perQueue('DecisionLatencyMs', 'p50'), ...perQueue('DecisionLatencyMs', 'p99')],
        0,
        6,
      ),
      widget(
        'Events queue',
        [
          [
            'AWS/SQS',
            'ApproximateNumberOfMessagesVisible',
            'QueueName',
            '@@EventsQueue@@',
            { stat: 'Maximum', label: 'events waiting' },
          ],
          [
            'AWS/SQS',
            'ApproximateAgeOfOldestMessage',
            'QueueName',
            '@@EventsQueue@@',
            { stat: 'Maximum', label: 'oldest event (s)', yAxis: 'right' },
          ],
          [
            'AWS/SQS',
            'ApproximateNumberOfMessagesVisible',
            'QueueName',
            '@@DeadLetterQueue@@',
            { stat: 'Maximum', label: 'dead letters' },
          ],
        ],
        12,
        6,
      ),
      widget(
        'Functions: errors and duration',
        [
          ['AWS/Lambda', 'Errors', 'FunctionName', '@@Scaler@@', { stat: 'Sum', label: 'scaler errors' }],
          ['AWS/Lambda', 'Errors', 'FunctionName', '@@Webhook@@', { stat: 'Sum', label: 'webhook errors' }],
          [
            'AWS/Lambda',
            'Duration',
            'FunctionName',
            '@@Webhook@@',
            { stat: 'p99', label: 'webhook p99 (ms)', yAxis: 'right' },
          ],
        ],
        0,
        12,
      ),
    ],
  };
  return {
    Type: 'AWS::CloudWatch::Dashboard',
    Properties: {
      DashboardBody: join(JSON.stringify(body), {
        Region: { Ref: 'AWS::Region' },
        EventsQueue: { 'Fn::GetAtt': ['EventsQueue', 'QueueName'] },
        DeadLetterQueue: { 'Fn::GetAtt': ['EventsDeadLetterQueue', 'QueueName'] },
        Scaler: { Ref: 'ScalerLambdaFunction' },
        Webhook: { Ref: 'WebhookLambdaFunction' },
      }),
    },
  };
}

/** The resources for `queues` (the QUEUES list) and the alarm duration, as a resources fragment. */
function monitoringResources(queues, limiterAtMaxMinutes) {
  const minutes = Number(limiterAtMaxMinutes);
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) {
    throw new Error(
      `limiterAtMaxAlarmMinutes must be an integer from 1 to 1440, got ${JSON.stringify(limiterAtMaxMinutes)}`,
    );
  }
  const names = [
    ...new Set(
      String(queues)
        .split(',')
        .map((q) => q.trim())
        .filter(Boolean),
    ),
  ];
  if (names.length === 0) throw new Error('queues must name at least one queue');
  const resources = { Dashboard: dashboard(names) };
  for (const q of names) resources[`LimiterAtMaxAlarm${idFor(q)}`] = limiterAlarm(q, minutes);
  return { Resources: resources };
}

module.exports = async ({ resolveVariable }) =>
  monitoringResources(await resolveVariable('param:queues'), await resolveVariable('param:limiterAtMaxAlarmMinutes'));
module.exports.monitoringResources = monitoringResources;
