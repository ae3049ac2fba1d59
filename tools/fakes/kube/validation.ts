/** The subset of the API server's batch/v1 Job validation that matters to an agent autoscaler. */
import * as k8sModels from '@kubernetes/client-node';
import { asObject, isObject, type JsonObject } from './objects.js';
import type { StatusCause } from './status.js';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function invalidCause(field: string, value: unknown, detail: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${detail}`, field };
}
function required(field: string, detail = ''): StatusCause {
  return { reason: 'FieldValueRequired', message: `Required value${detail ? `: ${detail}` : ''}`, field };
}
function forbidden(field: string, detail: string): StatusCause {
  return { reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field };
}
function unsupported(field: string, value: unknown, supported: string[]): StatusCause {
  return {
    reason: 'FieldValueNotSupported',
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((s) => `"${s}"`).join(', ')}`,
    field,
  };
}

function validateLabels(labels: unknown, field: string, causes: StatusCause[]): void {
  if (labels === undefined || labels === null) return;
  if (!isObject(labels)) return void causes.push(invalidCause(field, labels, 'must be a map'));
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (
      (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) ||
      name.length > 63 ||
      !LABEL_NAME.test(name)
    ) {
      causes.push(invalidCause(`${field}`, key, "name part must consist of alphanumeric characters, '-', '_' or '.'"));
    }
    if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
      causes.push(
        invalidCause(
          `${field}`,
          value,
          value && String(value).length > 63
            ? 'must be no more than 63 characters'
            : "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ),
      );
    }
  }
}

function nonNegativeInt(spec: JsonObject, key: string, causes: StatusCause[], max?: number): void {
  const v = spec[key];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    causes.push(invalidCause(`spec.${key}`, v, 'must be greater than or equal to 0'));
  else if (max !== undefined && v > max)
    causes.push(invalidCause(`spec.${key}`, v, `must be less than or equal to ${max}`));
}

const oneOf = (v: unknown, values: readonly string[]) => typeof v === 'string' && values.includes(v);

/**
 * Validation causes for a Job create (after defaulting). Empty when valid; then the body has the
 * shape of `ValidJobInput` (objects.ts).
 */
export function validateJob(job: JsonObject): StatusCause[] {
  const causes: StatusCause[] = [];
  if (job.metadata !== undefined && !isObject(job.metadata))
    causes.push(invalidCause('metadata', job.metadata, 'must be an object'));
  const meta = asObject(job.metadata);
  const name = meta.name;
  if (!name) causes.push(required('metadata.name', 'name or generateName is required'));
  else if (typeof name !== 'string' || !DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
    causes.push(
      invalidCause(
        'metadata.name',
        name,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      ),
    );
  } else if (name.length > 63) {
    // The Job name becomes the value of the pods' job-name label.
    causes.push(invalidCause('metadata.labels', name, 'must be no more than 63 characters'));
  }
  validateLabels(meta.labels, 'metadata.labels', causes);

  const spec = job.spec;
  if (!isObject(spec)) return [...causes, required('spec')];
  const indexed = spec.completionMode === 'Indexed';
  if (spec.completionMode !== undefined && !oneOf(spec.completionMode, ['NonIndexed', 'Indexed'])) {
    causes.push(unsupported('spec.completionMode', spec.completionMode, ['NonIndexed', 'Indexed']));
  }
  nonNegativeInt(spec, 'parallelism', causes, indexed ? 100_000 : undefined);
  nonNegativeInt(spec, 'completions', causes, indexed ? 100_000 : undefined);
  nonNegativeInt(spec, 'backoffLimit', causes);
  nonNegativeInt(spec, 'backoffLimitPerIndex', causes);
  nonNegativeInt(spec, 'maxFailedIndexes', causes);
  nonNegativeInt(spec, 'ttlSecondsAfterFinished', causes);
  if (
    spec.activeDeadlineSeconds !== undefined &&
    !(
      typeof spec.activeDeadlineSeconds === 'number' &&
      Number.isInteger(spec.activeDeadlineSeconds) &&
      spec.activeDeadlineSeconds > 0
    )
  ) {
    causes.push(invalidCause('spec.activeDeadlineSeconds', spec.activeDeadlineSeconds, 'must be greater than 0'));
  }
  if (indexed && (spec.completions === undefined || spec.completions === null)) {
    causes.push(required('spec.completions', 'when completion mode is Indexed'));
  }
  if (spec.backoffLimitPerIndex !== undefined && spec.backoffLimitPerIndex !== null && !indexed) {
    causes.push(forbidden('spec.backoffLimitPerIndex', 'requires indexed completion mode'));
  }
  if (spec.maxFailedIndexes !== undefined && spec.maxFailedIndexes !== null && spec.backoffLimitPerIndex == null) {
    causes.push(required('spec.backoffLimitPerIndex', 'when maxFailedIndexes is specified'));
  }
  if (spec.selector !== undefined && !spec.manualSelector) {
    causes.push(invalidCause('spec.selector', spec.selector, '`selector` not auto-generated'));
  }

  const template = spec.template;
  const podSpec = isObject(template) ? template.spec : undefined;
  if (!isObject(template) || !isObject(podSpec)) return [...causes, required('spec.template')];
  if (template.metadata !== undefined && !isObject(template.metadata))
    causes.push(invalidCause('spec.template.metadata', template.metadata, 'must be an object'));
  validateLabels(asObject(template.metadata).labels, 'spec.template.metadata.labels', causes);
  const restartPolicy = podSpec.restartPolicy ?? 'Always';
  if (!oneOf(restartPolicy, ['OnFailure', 'Never'])) {
    causes.push(unsupported('spec.template.spec.restartPolicy', restartPolicy, ['OnFailure', 'Never']));
  }
  if (spec.podFailurePolicy && restartPolicy !== 'Never') {
    causes.push(
      invalidCause(
        'spec.template.spec.restartPolicy',
        restartPolicy,
        'only "Never" is supported when podFailurePolicy is specified',
      ),
    );
  }
  if (spec.backoffLimitPerIndex != null && restartPolicy !== 'Never') {
    causes.push(
      invalidCause(
        'spec.template.spec.restartPolicy',
        restartPolicy,
        'only "Never" is supported when backoffLimitPerIndex is specified',
      ),
    );
  }
  const policy = spec.podFailurePolicy;
  const rawRules = isObject(policy) ? (policy.rules ?? []) : [];
  if (policy !== undefined && policy !== null && !isObject(policy))
    causes.push(invalidCause('spec.podFailurePolicy', policy, 'must be an object'));
  if (!Array.isArray(rawRules)) causes.push(invalidCause('spec.podFailurePolicy.rules', rawRules, 'must be a list'));
  const rules: unknown[] = Array.isArray(rawRules) ? rawRules : [];
  rules.forEach((raw, i) => {
    const field = `spec.podFailurePolicy.rules[${i}]`;
    const rule = asObject(raw);
    if (!oneOf(rule.action, ['FailJob', 'Ignore', 'Count', 'FailIndex'])) {
      causes.push(unsupported(`${field}.action`, rule.action, ['Count', 'FailIndex', 'FailJob', 'Ignore']));
    }
    if (rule.action === 'FailIndex' && spec.backoffLimitPerIndex == null) {
      causes.push(forbidden(`${field}.action`, 'requires the backoffLimitPerIndex to be set'));
    }
    if (Boolean(rule.onExitCodes) === Boolean(rule.onPodConditions)) {
      causes.push(
        invalidCause(field, 'specifying both OnExitCodes and OnPodConditions is not supported', 'specify one'),
      );
    }
    if (rule.onExitCodes) {
      const values = asObject(rule.onExitCodes).values;
      if (!Array.isArray(values) || !values.every((v) => Number.isInteger(v)))
        causes.push(invalidCause(`${field}.onExitCodes.values`, values, 'must be a list of integers'));
    }
    if (rule.onPodConditions && !Array.isArray(rule.onPodConditions))
      causes.push(invalidCause(`${field}.onPodConditions`, rule.onPodConditions, 'must be a list'));
  });
  const containers = podSpec.containers ?? [];
  if (!Array.isArray(containers) || containers.length === 0) causes.push(required('spec.template.spec.containers'));
  (Array.isArray(containers) ? containers : []).forEach((raw: unknown, i) => {
    const c = asObject(raw);
    if (!c.name) causes.push(required(`spec.template.spec.containers[${i}].name`));
    else if (typeof c.name !== 'string' || !DNS1123_LABEL.test(c.name) || c.name.length > 63) {
      causes.push(invalidCause(`spec.template.spec.containers[${i}].name`, c.name, 'a lowercase RFC 1123 label'));
    }
    if (!c.image) causes.push(required(`spec.template.spec.containers[${i}].image`));
    else if (typeof c.image !== 'string')
      causes.push(invalidCause(`spec.template.spec.containers[${i}].image`, c.image, 'must be a string'));
  });
  return causes;
}

/** A model of @kubernetes/client-node: its fields as the Kubernetes OpenAPI schema names them. */
type ModelClass = { getAttributeTypeMap(): { baseName: string; type: string }[] };

function modelOf(type: string): ModelClass | undefined {
  const model = (k8sModels as unknown as Record<string, unknown>)[type];
  return typeof model === 'function' && typeof (model as Partial<ModelClass>).getAttributeTypeMap === 'function'
    ? (model as unknown as ModelClass)
    : undefined;
}

/**
 * The fields of `value` its type (a client-node model named from the Kubernetes OpenAPI schema,
 * e.g. V1Job) does not have, as the API server's strict decoder names them: `spec.template.spec.
 * containers[0].imagePullPolice` (apimachinery's StrictDecodingError).
 */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  const array = /^Array<(.+)>$/.exec(type);
  if (array?.[1]) {
    const item = array[1];
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, item, `${path}[${i}]`)) : [];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map?.[1]) {
    const item = map[1];
    return isObject(value) ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, item, `${path}[${k}]`)) : [];
  }
  const model = modelOf(type);
  if (!model || !isObject(value)) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const at = path ? `${path}.${k}` : k;
    const t = fields.get(k);
    // apiVersion and kind are read by the decoder itself (TypeMeta).
    if (t === undefined) return k === 'apiVersion' || k === 'kind' ? [] : [at];
    return unknownFields(v, t, at);
  });
}
