/**
 * Ajv for Fastify: request bodies are validated strictly (no coercion, no silent removal of unknown
 * fields, OpenAPI discriminators); query strings and params coerce strings to numbers as usual.
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchema, FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS: its default export arrives wrapped under NodeNext.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const base: Options = { allErrors: false, strict: false, discriminator: true, useDefaults: true };

function make(options: Options): Ajv {
  const ajv = new Ajv({ ...base, ...options });
  addFormats(ajv);
  return ajv;
}

// verbose: errors carry their schema, so a tagged union's error can list the tags it accepts.
const bodyAjv = make({ coerceTypes: false, removeAdditional: false, useDefaults: false, verbose: true });
const otherAjv = make({ coerceTypes: 'array', removeAdditional: false });

export const validatorCompiler: FastifySchemaCompiler<FastifySchema> = ({ schema, httpPart }) => {
  if (httpPart !== 'body') return otherAjv.compile(schema as object) as ValidateFunction;
  const validate = bodyAjv.compile(schema as object);
  // Binary bodies (e.g. image/png, parsed to a Buffer by their content-type parser) are not JSON:
  // the route decodes and checks them itself.
  const binaryAware = (data: unknown) => Buffer.isBuffer(data) || validate(data);
  return Object.defineProperty(binaryAware, 'errors', { get: () => validate.errors }) as unknown as ValidateFunction;
};
