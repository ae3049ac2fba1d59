/**
 * infra/aws/ledger-table.yml is the one definition of the table. CloudFormation deploys it; the
 * tests and the local stack turn its Properties into CreateTable / UpdateTimeToLive calls here.
 * PointInTimeRecovery and SSE have no meaning locally and are ignored.
 */
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  type TimeToLiveSpecification,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { parse } from 'yaml';

export const LEDGER_TABLE_RESOURCE = 'LedgerTable';

export interface TableDefinition {
  readonly createTable: CreateTableCommandInput & { readonly TableName: string };
  readonly timeToLive?: TimeToLiveSpecification;
}

type Props = Record<string, unknown>;

function pick<T>(props: Props, name: string, required = true): T {
  const value = props[name];
  if (value === undefined && required) throw new Error(`ledger table definition: Properties.${name} is missing`);
  return value as T;
}

/** Maps the `LedgerTable` resource of the CloudFormation YAML to the DynamoDB API. */
export function tableDefinitionFromCloudFormation(
  yamlText: string,
  tableName: string,
  resourceName = LEDGER_TABLE_RESOURCE,
): TableDefinition {
  type Resources = Record<string, { Type?: string; Properties?: Props }>;
  const doc = parse(yamlText) as (Resources & { Resources?: Resources }) | null;
  // The resource at the top level (ledger-table.yml) or under Resources (cache.yml).
  const resource = doc?.[resourceName] ?? doc?.Resources?.[resourceName];
  if (resource?.Type !== 'AWS::DynamoDB::Table' || !resource.Properties) {
    throw new Error(`table definition: no ${resourceName} of Type AWS::DynamoDB::Table`);
  }
  const props = resource.Properties;
  const gsis = pick<CreateTableCommandInput['GlobalSecondaryIndexes']>(props, 'GlobalSecondaryIndexes', false);
  const ttl = pick<{ AttributeName: string; Enabled: boolean } | undefined>(props, 'TimeToLiveSpecification', false);
  const billingMode = pick<CreateTableCommandInput['BillingMode']>(props, 'BillingMode', false) ?? 'PROVISIONED';
  const createTable: TableDefinition['createTable'] = {
    TableName: tableName,
    BillingMode: billingMode,
    AttributeDefinitions: pick(props, 'AttributeDefinitions'),
    KeySchema: pick(props, 'KeySchema'),
    ...(gsis?.length
      ? {
          GlobalSecondaryIndexes: gsis.map((gsi) => ({
            IndexName: gsi.IndexName,
            KeySchema: gsi.KeySchema,
            Projection: gsi.Projection,
            ...(gsi.ProvisionedThroughput ? { ProvisionedThroughput: gsi.ProvisionedThroughput } : {}),
          })),
        }
      : {}),
    ...(props.ProvisionedThroughput ? { ProvisionedThroughput: props.ProvisionedThroughput as never } : {}),
  };
  return { createTable, ...(ttl ? { timeToLive: { AttributeName: ttl.AttributeName, Enabled: ttl.Enabled } } : {}) };
}

/**
 * Creates the table (if it does not exist yet), waits until it is ACTIVE and turns TTL on.
 * For the tests and the local stack; on AWS CloudFormation owns the table.
 */
export async function createTableFromDefinition(client: DynamoDBClient, definition: TableDefinition): Promise<void> {
  const { TableName } = definition.createTable;
  try {
    await client.send(new CreateTableCommand(definition.createTable));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let attempt = 0; ; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName }));
    if (Table?.TableStatus === 'ACTIVE') break;
    if (attempt > 100) throw new Error(`table ${TableName} did not become ACTIVE`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (definition.timeToLive?.Enabled) {
    try {
      await client.send(new UpdateTimeToLiveCommand({ TableName, TimeToLiveSpecification: definition.timeToLive }));
    } catch (error) {
      // Already enabled (a second call on an existing table) is fine.
      if (!(error instanceof Error && /already enabled/i.test(error.message))) throw error;
    }
  }
}
