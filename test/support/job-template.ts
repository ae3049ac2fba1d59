import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A custom agent Job template (JOB_TEMPLATE) written to a fresh temporary folder: the Job's
 * header, then `pod`, the lines under `spec.template` (indented by 4). `remove` deletes the folder.
 */
export function writeJobTemplate(pod: readonly string[]): { readonly path: string; readonly remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'job-template-'));
  const path = join(dir, 'agent.yaml');
  writeFileSync(path, ['apiVersion: batch/v1', 'kind: Job', 'spec:', '  template:', ...pod, ''].join('\n'));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A template with two misspelt fields (imagePullPolice, nodeSelecter): a Strict API server refuses it. */
export const TEMPLATE_WITH_TYPOS: readonly string[] = [
  '    spec:',
  '      serviceAccountName: ci-agent',
  '      containers:',
  '        - name: agent',
  '          image: busybox:1.37',
  '          imagePullPolice: Always',
  '      nodeSelecter:',
  '        pool: ci',
];
