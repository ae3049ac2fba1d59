/**
 * Running an agent template's container command on this machine: the rendered Job's command,
 * args and environment (Kubernetes' $(VAR) expansion from earlier entries applied), with the
 * real agent binary from tools/agents/build.sh on PATH and a fake provider API on loopback.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import { loadTemplate } from '../../functions/adapters/kubernetes/templates.js';
import { buildAgentJob, jobNameFor } from '../../functions/core/agent-job.js';
import { type AgentHealth, classifyPod } from '../../functions/core/backoff.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Builds (or finds in its cache) one agent; returns the binary's path. */
export async function buildAgent(name: 'buildkite-agent' | 'gitlab-runner'): Promise<string> {
  const { stdout } = await promisify(execFile)(join(ROOT, 'tools', 'agents', 'build.sh'), [name], {
    maxBuffer: 16 << 20,
    timeout: 60 * 60_000,
  });
  return stdout.trim().split('\n').at(-1)!;
}

/** The agent container of a built-in template, rendered for one dispatch of queue `default`. */
export async function renderedContainer(template: 'buildkite' | 'github' | 'gitlab'): Promise<V1Container> {
  const job = buildAgentJob(await loadTemplate(template), {
    namespace: 'ci-agents',
    queue: 'default',
    dispatchId: 'd1',
    jobName: jobNameFor('default', 'd1'),
    count: 1,
    ttlSecondsAfterFinished: 600,
    activeDeadlineSeconds: 7200,
  });
  return job.spec!.template.spec!.containers[0]!;
}

/**
 * The container's environment as the kubelet would give it: literal values with $(VAR) expanded
 * from earlier entries; `from` supplies what valueFrom entries (Secrets, fields) would read.
 */
export function containerEnv(env: readonly V1EnvVar[], from: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.value !== undefined)
      out[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => out[v] ?? m);
    else if (from[e.name] !== undefined) out[e.name] = from[e.name]!;
  }
  return out;
}

export interface Exit {
  readonly code: number | null;
  readonly output: string;
  readonly ms: number;
}

export interface Running {
  readonly pid: number;
  readonly exited: Promise<Exit>;
  output(): string;
}

export function start(argv: readonly string[], env: Record<string, string>, cwd: string): Running {
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { env, cwd });
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const exited = ended(child).then(({ code, at }) => ({ code, output, ms: at - started }));
  return { pid: child.pid!, exited, output: () => output };
}

/**
 * The child's exit code and when it exited, resolved once what it wrote before exiting has been
 * read: when its pipes close, or shortly after the exit if a process it left behind still holds
 * them (in a pod, that process would be killed with the container).
 */
export async function ended(child: ChildProcess): Promise<{ code: number | null; at: number }> {
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const at = Date.now();
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 500))]);
  return { code, at };
}

export interface FakeApi {
  readonly url: string;
  readonly requests: { method: string; path: string; authorization: string | undefined; body: string }[];
  close(): Promise<void>;
}

/** An HTTP API on a free loopback port answering with `handler`. */
export async function fakeApi(
  handler: (req: IncomingMessage, body: string) => { status: number; json?: unknown },
): Promise<FakeApi> {
  const requests: FakeApi['requests'] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      requests.push({
        method: req.method!,
        path: req.url!,
        authorization: req.headers.authorization ?? (req.headers['private-token'] as string | undefined),
        body,
      });
      const { status, json } = handler(req, body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(json === undefined ? '' : JSON.stringify(json));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * What back-off makes of the pod of a container that ended like `exit`: the status the kubelet
 * would write (phase, terminated state with reason `Error` and the termination message: the
 * file's content, or with FallbackToLogsOnError and an empty file the last 80 lines / 2048 bytes
 * of the log), classified by functions/core/backoff.ts.
 */
export function backoffVerdict(container: V1Container, exit: Exit, terminationMessage: string): AgentHealth {
  const now = Date.now();
  const logTail = exit.output.trimEnd().split('\n').slice(-80).join('\n').slice(-2048);
  const message =
    terminationMessage ||
    (exit.code !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError' ? logTail : '');
  const pod: V1Pod = {
    status: {
      phase: exit.code === 0 ? 'Succeeded' : 'Failed',
      startTime: new Date(now - exit.ms),
      containerStatuses: [
        {
          name: container.name,
          image: container.image!,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: exit.code ?? 137,
              reason: exit.code === 0 ? 'Completed' : 'Error',
              ...(message ? { message } : {}),
              startedAt: new Date(now - exit.ms),
              finishedAt: new Date(now),
            },
          },
        },
      ],
    },
  };
  return classifyPod(pod, now, { baseMs: 30_000, maxMs: 600_000, unschedulableMs: 300_000 });
}
