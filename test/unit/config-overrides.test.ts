/**
 * QUEUE_OVERRIDES of every wrong shape is refused naming where in the JSON and what is wrong;
 * several problems are all reported, the first line as it was before the schema.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadScalerConfig, loadWebhookConfig } from '../../functions/shared/config.js';

const env = {
  EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/events',
  LEDGER_TABLE: 'ledger',
  KUBECONFIG: '/tmp/kubeconfig',
  QUEUES: 'default,gpu',
};

function refusal(overrides: unknown): string[] {
  const text = typeof overrides === 'string' ? overrides : JSON.stringify(overrides);
  try {
    loadScalerConfig({ ...env, QUEUE_OVERRIDES: text });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    expect(e.variable).toBe('QUEUE_OVERRIDES');
    return e.message.split('\n');
  }
  throw new Error(`expected QUEUE_OVERRIDES ${text} to be refused`);
}

const at = (where: string, what: string) => `at "${where}": ${what}`;

describe('QUEUE_OVERRIDES shapes', () => {
  it.each([
    ['not JSON', '{"default":', 'must be valid JSON: a JSON object keyed by queue name'],
    ['an array', [], at('', 'must be an object')],
    ['a number', 3, at('', 'must be an object')],
    ['null', null, at('', 'must be an object')],
    ['a queue given a list', { default: [] }, at('default', 'must be an object')],
    ['a queue given a string', { default: 'gpu' }, at('default', 'must be an object')],
    ['an unknown setting', { default: { tags: ['x'] } }, at('default.tags', 'is not a known setting')],
    ['maxAgents as a string', { default: { maxAgents: '3' } }, at('default.maxAgents', 'must be an integer >= 1')],
    ['maxAgents 0', { default: { maxAgents: 0 } }, at('default.maxAgents', 'must be an integer >= 1')],
    ['a fractional minAgents', { default: { minAgents: 1.5 } }, at('default.minAgents', 'must be an integer >= 0')],
    ['a negative minAgents', { default: { minAgents: -1 } }, at('default.minAgents', 'must be an integer >= 0')],
    ['an empty jobTemplate', { default: { jobTemplate: '' } }, at('default.jobTemplate', 'must be a non-empty string')],
    ['a provider not ours', { default: { provider: 'jenkins' } }, at('default.provider', 'must be one of buildkite')],
    ['runUntagged as a string', { default: { runUntagged: 'yes' } }, at('default.runUntagged', 'must be a boolean')],
    [
      'a bad Secret name',
      { gpu: { runnerTokenSecret: 'Bad_Name' } },
      at('gpu.runnerTokenSecret', 'must be a Kubernetes'),
    ],
    ['tags as a string', { default: { agentTags: 'os=linux' } }, at('default.agentTags', 'must be a non-empty array')],
    ['no labels', { default: { runnerLabels: [] } }, at('default.runnerLabels', 'must be a non-empty array')],
    [
      '65 labels',
      { default: { runnerLabels: Array.from({ length: 65 }, (_, i) => `l${i}`) } },
      at('default.runnerLabels', 'must be a non-empty array of at most 64 strings'),
    ],
    ['a tag without =', { default: { agentTags: ['os'] } }, at('default.agentTags.0', 'is not a valid element: "os"')],
    [
      'a tag with a comma',
      { gpu: { runnerTags: ['a', 'b,c'] } },
      at('gpu.runnerTags.1', 'is not a valid element: "b,c"'),
    ],
    ['a number as a tag', { gpu: { runnerTags: [7] } }, at('gpu.runnerTags.0', 'is not a valid element: 7')],
  ])('%s', (_what, overrides, message) => {
    const [first] = refusal(overrides);
    expect(first).toContain(message);
    expect(first).toMatch(/^QUEUE_OVERRIDES must be /);
  });

  it('reports every problem, a line each, unknown settings and the first queue in QUEUES first', () => {
    const lines = refusal({
      gpu: { minAgents: -1 },
      default: { maxAgents: 'x', tags: 1, agentTags: ['os'] },
    });
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^QUEUE_OVERRIDES must be a JSON object keyed by queue name, .*; at "default.tags": is not/,
    );
    expect(lines.slice(1)).toEqual([
      'QUEUE_OVERRIDES at "default.agentTags.0": is not a valid element: "os"',
      'QUEUE_OVERRIDES at "default.maxAgents": must be an integer >= 1',
      'QUEUE_OVERRIDES at "gpu.minAgents": must be an integer >= 0',
    ]);
  });

  it('an unknown queue and a bad setting are both reported', () => {
    expect(refusal({ cpu: {}, gpu: { maxAgents: 0 } })).toEqual([
      'QUEUE_OVERRIDES names queue(s) not in QUEUES: "cpu"',
      expect.stringContaining('at "gpu.maxAgents": must be an integer >= 1'),
    ]);
  });

  it('maxAgents below minAgents, after the defaults apply', () => {
    expect(refusal({ gpu: { minAgents: 11 } })).toEqual([
      'QUEUE_OVERRIDES: queue "gpu" has maxAgents 10 below minAgents 11',
    ]);
  });

  it('a good override is taken as given, duplicate elements once', () => {
    const c = loadWebhookConfig({
      ...env,
      QUEUE_OVERRIDES: JSON.stringify({
        gpu: { provider: 'gitlab', runnerTags: ['gpu', 'gpu', 'cuda'], runUntagged: true, jobTemplate: 'gitlab' },
      }),
    });
    expect(c.routing.queues[1]).toEqual({
      queue: 'gpu',
      provider: 'gitlab',
      agentTags: ['queue=gpu'],
      runnerLabels: ['self-hosted', 'linux', 'x64', 'gpu'],
      runnerTags: ['gpu', 'cuda'],
      runUntagged: true,
    });
  });
});
