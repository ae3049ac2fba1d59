import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tableDefinitionFromCloudFormation } from '../../tools/local/table-definition.js';

const yamlText = readFileSync(new URL('../../infra/aws/ledger-table.yml', import.meta.url), 'utf8');

describe('infra/aws/ledger-table.yml as CreateTable input', () => {
  it('maps the CloudFormation resource to the data model of the ledger table', () => {
    const { createTable, timeToLive } = tableDefinitionFromCloudFormation(yamlText, 'my-ledger');
    expect(createTable).toEqual({
      TableName: 'my-ledger',
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'openKey', AttributeType: 'S' },
        { AttributeName: 'openAt', AttributeType: 'N' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'open-jobs',
          KeySchema: [
            { AttributeName: 'openKey', KeyType: 'HASH' },
            { AttributeName: 'openAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    });
    expect(timeToLive).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  });

  it('keeps point-in-time recovery and encryption on for AWS', () => {
    expect(yamlText).toMatch(/PointInTimeRecoveryEnabled: true/);
    expect(yamlText).toMatch(/SSEEnabled: true/);
    expect(yamlText).not.toMatch(/^[^#\n]*!\w+/m); // no short tags: plain YAML for ${file(...)} and the tests
  });

  it('refuses a document without the LedgerTable resource', () => {
    expect(() => tableDefinitionFromCloudFormation('Other:\n  Type: AWS::SQS::Queue\n', 't')).toThrow(/LedgerTable/);
    expect(() =>
      tableDefinitionFromCloudFormation('LedgerTable:\n  Type: AWS::DynamoDB::Table\n  Properties: {}\n', 't'),
    ).toThrow(/AttributeDefinitions/);
  });
});
