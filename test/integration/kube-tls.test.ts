/**
 * One keep-alive TLS connection per cluster. client-node 2.0.1 builds a new undici Agent for every
 * request when the cluster has TLS options (KubeConfig.applySecurityAuthentication ->
 * createDispatcher, dist/config.js), so every call opened a new TLS connection; the adapter keeps
 * one (cluster.ts keepOneDispatcher). Measured against the fake API server served over TLS,
 * counting the server's `secureConnection` events.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster } from '../../functions/adapters/kubernetes/cluster.js';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { AGENT_JOB_SELECTOR, buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { FakeKube } from '../../tools/fakes/kube/index.js';

const NAMESPACE = 'ci-agents';
let kube: FakeKube;
let dir: string;

beforeAll(async () => {
  // A self-signed certificate for 127.0.0.1 (the kubeconfig carries it as the cluster's CA).
  dir = mkdtempSync(join(tmpdir(), 'kube-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  kube = await new FakeKube({ namespace: NAMESPACE, tls }).start();
});

afterAll(async () => {
  await kube?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('TLS connections to the API server', () => {
  it("a tick's calls share one keep-alive TLS connection: 0 new handshakes after the first tick", async () => {
    expect(kube.url).toMatch(/^https:/);
    const cluster = await createCluster({ kind: 'kubeconfig-file', path: kube.kubeconfigPath }, NAMESPACE);
    const template = await loadTemplate('buildkite');
    const handshakes: number[] = [];
    for (let t = 0; t < 4; t++) {
      const before = kube.tlsHandshakes;
      // What a tick asks of the cluster: the Jobs, some pods, a create.
      await cluster.listAgentJobs();
      const jobName = jobNameFor('q', `tls-${t}`);
      await cluster.createJob(
        buildAgentJob(template, {
          namespace: NAMESPACE,
          queue: 'q',
          dispatchId: `tls-${t}`,
          jobName,
          count: 2,
          ttlSecondsAfterFinished: 600,
          activeDeadlineSeconds: 3600,
        }),
      );
      await cluster.listAgentPods!({ jobNames: [jobName] });
      await Promise.all([cluster.listAgentJobs(), cluster.listAgentPods!()]);
      handshakes.push(kube.tlsHandshakes - before);
    }
    console.log(`TLS handshakes per tick (5 calls each): ${handshakes.join(', ')}`);
    expect(handshakes[0]).toBeGreaterThanOrEqual(1);
    // The pool opens what the tick's concurrency needs (two calls at once), then reuses it.
    expect(handshakes[0]).toBeLessThanOrEqual(3);
    expect(handshakes.slice(1)).toEqual([0, 0, 0]);
  });

  it('client-node as shipped opens a TLS connection per call (what the adapter avoids)', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const batch = kc.makeApiClient(BatchV1Api);
    const before = kube.tlsHandshakes;
    for (let i = 0; i < 5; i++)
      await batch.listNamespacedJob({ namespace: NAMESPACE, labelSelector: AGENT_JOB_SELECTOR });
    console.log(
      `client-node 2.0.1 without the kept dispatcher: ${kube.tlsHandshakes - before} TLS handshakes for 5 calls`,
    );
    expect(kube.tlsHandshakes - before).toBe(5);
  });
});
