/**
 * DynamoDB Local (AWS's own emulator: the jar shipped in the npm package amplify-dynamodb-simulator)
 * as a child process on 127.0.0.1, in memory. Used by the local stack (`npm start`) and, through
 * test/support/dynamodb.ts, by the tests. `-sharedDb`: one database whatever the credentials. The JVM runs with -XX:-UsePerfData so it writes no
 * hsperfdata file under /tmp; the child is killed when this process exits, whatever the reason.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { PROJECT_ROOT } from '../../infra/aws/definitions.js';
import { createTableFromDefinition, tableDefinitionFromCloudFormation } from './table-definition.js';

/** The deployed definition of the table (serverless.yml includes it). */
export const LEDGER_TABLE_YAML = path.join(PROJECT_ROOT, 'infra/aws/ledger-table.yml');

function emulatorDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('amplify-dynamodb-simulator/package.json')), 'emulator');
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough for a local emulator). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A low-level client for the emulator (dummy credentials; a few retries only). */
export function localDynamoDbClient(endpoint: string, maxAttempts = 3): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts,
  });
}

export interface DynamoDbLocal {
  readonly endpoint: string;
  /** Process id of the JVM. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export interface DynamoDbLocalOptions {
  /** Port on 127.0.0.1 (default: a free one). */
  readonly port?: number;
  /** How long to wait for the emulator to answer (default 30 s). */
  readonly startTimeoutMs?: number;
}

export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const dir = emulatorDir();
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn(
    'java',
    [
      '-XX:-UsePerfData',
      `-Djava.library.path=${path.join(dir, 'DynamoDBLocal_lib')}`,
      '-jar',
      'DynamoDBLocal.jar',
      '-inMemory',
      // One database for every access key and region (otherwise DynamoDB Local keeps one per key).
      '-sharedDb',
      '-port',
      String(port),
    ],
    // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the JVM after the
    // code that still talks to it (it is killed on our exit in any case).
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  let stderr = '';
  let spawnError: Error | undefined;
  child.on('error', (e) => {
    spawnError = e; // e.g. ENOENT: no java on the PATH
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const endpoint = `http://127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null && !spawnError) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
    })());

  const client = localDynamoDbClient(endpoint);
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  try {
    for (;;) {
      if (spawnError) throw new Error(`DynamoDB Local needs Java 17+ on the PATH: ${spawnError.message}`);
      if (child.exitCode !== null) throw new Error(`DynamoDB Local exited (${child.exitCode}): ${stderr}`);
      try {
        await client.send(new ListTablesCommand({}));
        break;
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(`DynamoDB Local did not answer on ${endpoint}: ${String(error)} ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint, pid: child.pid, stop };
}

/** Creates the ledger table from infra/aws/ledger-table.yml (the deployed definition). */
export async function createLedgerTable(endpoint: string, tableName: string): Promise<void> {
  const definition = tableDefinitionFromCloudFormation(await readFile(LEDGER_TABLE_YAML, 'utf8'), tableName);
  const client = localDynamoDbClient(endpoint);
  try {
    await createTableFromDefinition(client, definition);
  } finally {
    client.destroy();
  }
}
