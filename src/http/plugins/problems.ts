/**
 * One error handler: every error leaves as RFC 9457 problem+json. Validation errors name the
 * offending field as a JSON pointer; unexpected errors are logged and answered without details.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  /** With Ajv's verbose option (request bodies): the schema that holds the failing keyword. */
  parentSchema?: unknown;
}

interface FieldError {
  pointer: string;
  detail: string;
}

const PART_PREFIX: Record<string, string> = { body: '', querystring: '/query', params: '/params', headers: '/headers' };

function fieldError(e: AjvError, part: string): FieldError {
  let pointer = e.instancePath;
  let detail = e.message ?? e.keyword;
  const p = e.params;
  if (e.keyword === 'required' && typeof p.missingProperty === 'string') {
    pointer += `/${p.missingProperty}`;
    detail = 'is required';
  } else if (e.keyword === 'additionalProperties' && typeof p.additionalProperty === 'string') {
    pointer += `/${p.additionalProperty}`;
    detail = 'is not a known field';
  } else if (e.keyword === 'discriminator' && typeof p.tag === 'string') {
    pointer += `/${p.tag}`;
    const allowed = tagValues(e.parentSchema, p.tag);
    const oneOf = allowed.length ? `; one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}` : '';
    detail = p.tagValue === undefined ? `is required${oneOf}` : `unknown value ${JSON.stringify(p.tagValue)}${oneOf}`;
  } else if (e.keyword === 'enum' && Array.isArray(p.allowedValues)) {
    detail = `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return { pointer: `${PART_PREFIX[part] ?? ''}${pointer}`, detail };
}

/** The values a tagged union's branches give their tag (const or enum), from the schema Ajv reports (verbose). */
function tagValues(schema: unknown, tag: string): unknown[] {
  const s = schema as { oneOf?: unknown[]; anyOf?: unknown[] } | undefined;
  const out: unknown[] = [];
  for (const branch of s?.oneOf ?? s?.anyOf ?? []) {
    const t = (branch as { properties?: Record<string, { const?: unknown; enum?: unknown[] }> }).properties?.[tag];
    if (t?.const !== undefined) out.push(t.const);
    if (Array.isArray(t?.enum)) out.push(...t.enum);
  }
  return out;
}

/**
 * A union of literals (TypeBox's way of writing an enum) fails as one `const` error per literal
 * plus an `anyOf`: one error saying which values are allowed reads better than nine saying
 * "must be equal to constant".
 */
function collapseLiteralUnions(errors: AjvError[]): AjvError[] {
  const out: AjvError[] = [];
  for (const e of errors) {
    if (e.keyword !== 'anyOf') {
      out.push(e);
      continue;
    }
    const here = out.filter((x) => x.instancePath === e.instancePath);
    if (here.length === 0 || !here.every((x) => x.keyword === 'const' || x.keyword === 'enum')) {
      out.push(e);
      continue;
    }
    const allowed = here.flatMap((x) =>
      x.keyword === 'const' ? [x.params.allowedValue] : Array.isArray(x.params.allowedValues) ? x.params.allowedValues : [],
    );
    const kept = out.filter((x) => !here.includes(x));
    out.length = 0;
    out.push(...kept, { instancePath: e.instancePath, keyword: 'enum', params: { allowedValues: allowed } });
  }
  return out;
}

export function sendProblem(reply: FastifyReply, status: number, title: string, detail: string, errors?: FieldError[]): FastifyReply {
  return reply
    .code(status)
    .type('application/problem+json')
    .send({
      type: status >= 500 ? 'about:blank' : `https://regula.dev/problems/${title.toLowerCase().replaceAll(' ', '-')}`,
      title,
      status,
      detail,
      instance: reply.request.url,
      ...(errors?.length ? { errors } : {}),
    });
}

export function registerProblems(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof AppError) {
      const errors = err.pointer !== undefined ? [{ pointer: err.pointer, detail: err.message }] : undefined;
      return sendProblem(reply, err.status, err.title, err.message, errors);
    }
    if (err.validation) {
      const part = err.validationContext ?? 'body';
      const errors = collapseLiteralUnions(err.validation as unknown as AjvError[]).map((e) => fieldError(e, part));
      const first = errors[0];
      const detail = first ? `${first.pointer || '/'} ${first.detail}` : err.message;
      return sendProblem(reply, 400, 'Invalid request', detail, errors);
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const title = status === 413 ? 'Payload Too Large' : status === 415 ? 'Unsupported Media Type' : 'Bad Request';
      return sendProblem(reply, status, title, err.message);
    }
    request.log.error({ err }, 'unhandled error');
    return sendProblem(reply, 500, 'Internal Server Error', 'an unexpected error occurred; it has been logged');
  });

  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, 'Not Found', `no route for ${request.method} ${request.url}`));
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (headers too large, a malformed
 * request line, a header timeout): the same problem+json as everything else, written to the socket.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request headers are larger than the server accepts (16 KiB in all)']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request was not received in time']
        : [400, 'the request is not valid HTTP'];
  const title = STATUS_CODES[status] ?? 'Bad Request';
  const body = JSON.stringify({
    type: status === 400 ? 'about:blank' : `https://regula.dev/problems/${title.toLowerCase().replaceAll(' ', '-')}`,
    title,
    status,
    detail,
  });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/problem+json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Why a parsed JSON value cannot be taken as it is, and where: the first offending string or key. */
function unstorable(value: unknown): { pointer: string; detail: string } | null {
  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  const why = (s: string) =>
    s.includes('\u0000')
      ? 'contains a NUL character (U+0000), which cannot be stored'
      : LONE_SURROGATE.test(s)
        ? 'contains an unpaired UTF-16 surrogate: not valid Unicode text'
        : null;
  const escapeToken = (k: string) => k.replaceAll('~', '~0').replaceAll('/', '~1');
  // Iterative: a deeply nested body must not overflow the stack of the process that serves others.
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      const d = why(v);
      if (d) return { pointer: at, detail: d };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${at}/${i}`]);
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, child] of Object.entries(v)) {
        const here = `${at}/${escapeToken(k)}`;
        if (k === '__proto__') return { pointer: here, detail: 'is not an allowed field name' };
        const d = why(k);
        if (d) return { pointer: here, detail: `the field name ${d}` };
        stack.push([child, here]);
      }
    }
  }
  return null;
}

/**
 * The JSON body parser. JSON.parse, then one pass that refuses what could not be stored or would
 * be dangerous to merge, naming the field: NUL and unpaired surrogates (Postgres text and jsonb refuse
 * them, which would be a 500) and `__proto__` keys (Fastify's parser calls those invalid JSON).
 */
export function parseJsonBody(_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    done(new AppError(400, 'Bad Request', `Body is not valid JSON: ${(err as Error).message}`));
    return;
  }
  const bad = unstorable(value);
  if (bad) {
    done(new AppError(400, 'Invalid request', `${bad.pointer || '/'} ${bad.detail}`, bad.pointer));
    return;
  }
  done(null, value);
}
