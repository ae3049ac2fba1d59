/**
 * Where a process's CPU went, from a V8 CPU profile (`node --cpu-prof`): self time by owner
 * (our product code, the AWS SDK, the in-process emulators, Node's own code, GC, idle) and the
 * top functions. With the scaler benchmark this separates our work from the emulators':
 *
 *   node --cpu-prof --cpu-prof-dir=.local/prof --import tsx test/bench/scaler.ts 100000
 *   npx tsx test/bench/profile-split.ts .local/prof/*.cpuprofile
 *
 * Idle is time the event loop waited (on DynamoDB Local's answers, mostly: the JVM is another
 * process, its CPU time is in the benchmark's own output).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function ownerOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(idle)') return 'idle (waiting on I/O)';
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(program)') return 'V8/native (program)';
    return 'native';
  }
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) {
    if (pkg.startsWith('@aws-sdk/') || pkg.startsWith('@smithy/') || pkg.startsWith('@aws-crypto/')) return 'AWS SDK';
    return `package ${pkg}`;
  }
  if (url.includes('/tools/fakes/kube/')) return 'fake Kubernetes API (emulator)';
  if (url.includes('/tools/local/')) return 'local tooling';
  if (url.includes('/functions/')) return 'ours (functions/)';
  if (url.includes('/test/')) return 'benchmark harness (test/)';
  return 'other';
}

export function split(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const owners = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    const { url, functionName, lineNumber } = node.callFrame;
    const owner = ownerOf(url, functionName);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|functions|test)\//, '$1/')}:${lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    total += us;
  });
  const rows = (m: Map<string, number>, top: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: +((100 * us) / total).toFixed(1) }));
  return { totalMs: Math.round(total / 1000), byOwner: rows(owners, 30), topFunctions: rows(functions, 25) };
}

if (process.argv[1]?.endsWith('profile-split.ts')) {
  for (const file of process.argv.slice(2)) {
    console.log(JSON.stringify({ file, ...split(JSON.parse(readFileSync(file, 'utf8')) as Profile) }, null, 2));
  }
}
