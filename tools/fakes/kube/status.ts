/** metav1.Status bodies exactly as the API server sends them. */

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

export interface Resource {
  group: string;
  resource: string;
}

/** `jobs.batch` / `pods` as in the server's messages. */
export function qualified(r: Resource): string {
  return r.group ? `${r.resource}.${r.group}` : r.resource;
}

function details(r: Resource, name?: string): StatusBody['details'] {
  return { ...(name !== undefined ? { name } : {}), ...(r.group ? { group: r.group } : {}), kind: r.resource };
}

export function failure(code: number, reason: string, message: string, d?: StatusBody['details']): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(d ? { details: d } : {}),
    code,
  };
}

export const notFound = (r: Resource, name: string) =>
  failure(404, 'NotFound', `${qualified(r)} "${name}" not found`, details(r, name));

export const alreadyExists = (r: Resource, name: string) =>
  failure(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, details(r, name));

export const conflict = (r: Resource, name: string) =>
  failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    details(r, name),
  );

/** What the RBAC authorizer answers a request it refuses (the user is the scaler's token). */
export function forbidden(call: {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}): StatusBody {
  const resource = call.subresource ? `${call.resource}/${call.subresource}` : call.resource;
  const what = call.name
    ? `${qualified({ group: call.group, resource: call.resource })} "${call.name}"`
    : qualified(call);
  return failure(
    403,
    'Forbidden',
    `${what} is forbidden: User "ci-agent-autoscaler" cannot ${call.verb} resource "${resource}" in API group "${call.group}"${call.namespace ? ` in the namespace "${call.namespace}"` : ''}`,
    { ...(call.name ? { name: call.name } : {}), ...(call.group ? { group: call.group } : {}), kind: call.resource },
  );
}

export const badRequest = (message: string) => failure(400, 'BadRequest', message);

export const unauthorized = () => failure(401, 'Unauthorized', 'Unauthorized');

export const methodNotAllowed = (message: string) => failure(405, 'MethodNotAllowed', message);

export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): StatusBody {
  const text = causes.map((c) => `${c.field}: ${c.message}`);
  const [only] = text;
  const joined = text.length === 1 && only !== undefined ? only : `[${text.join(', ')}]`;
  return failure(422, 'Invalid', `${kind}.${group} "${name}" is invalid: ${joined}`, {
    name,
    group,
    kind,
    causes,
  });
}

export function success(r: Resource, name: string, uid: string): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { ...details(r, name), uid },
    code: 200,
  };
}

/** The Status a real server sends for an injected fault with this HTTP code. */
export function forCode(code: number, retryAfterSeconds?: number): StatusBody {
  switch (code) {
    case 429:
      return failure(429, 'TooManyRequests', 'Too many requests, please try again later.', {
        retryAfterSeconds: retryAfterSeconds ?? 1,
      });
    case 500:
      return failure(500, 'InternalError', 'Internal error occurred: injected fault', {
        causes: [{ reason: '', message: 'injected fault' }],
      });
    case 503:
      return failure(503, 'ServiceUnavailable', 'the server is currently unable to handle the request', {
        ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      });
    case 504:
      return failure(
        504,
        'Timeout',
        'the server was unable to return a response in the time allotted, but may still be processing the request',
      );
    case 410:
      return failure(
        410,
        'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
      );
    case 403:
      return failure(403, 'Forbidden', 'forbidden: injected fault');
    case 401:
      return unauthorized();
    case 409:
      return failure(409, 'Conflict', 'injected conflict');
    default:
      return failure(code, code >= 500 ? 'InternalError' : 'BadRequest', `injected fault ${code}`);
  }
}
