/**
 * One error handler: every error leaves as RFC 9457 problem+json. Validation errors name the
 * offending field as a JSON pointer; unexpected errors are logged and answered without details.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../../errors.js';

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
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
    detail = p.tagValue === undefined ? `is required` : `unknown value ${JSON.stringify(p.tagValue)}`;
  } else if (e.keyword === 'enum' && Array.isArray(p.allowedValues)) {
    detail = `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return { pointer: `${PART_PREFIX[part] ?? ''}${pointer}`, detail };
}

export function sendProblem(
  reply: FastifyReply,
  status: number,
  title: string,
  detail: string,
  errors?: FieldError[],
): FastifyReply {
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
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof AppError) {
      const errors = err.pointer !== undefined ? [{ pointer: err.pointer, detail: err.message }] : undefined;
      return sendProblem(reply, err.status, err.title, err.message, errors);
    }
    if (err.validation) {
      const part = err.validationContext ?? 'body';
      const errors = (err.validation as unknown as AjvError[]).map((e) => fieldError(e, part));
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
