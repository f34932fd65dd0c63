/**
 * The OpenAPI 3.1 document, generated from the route table and the contract's zod schemas
 * (`z.toJSONSchema`, JSON Schema 2020-12, which OpenAPI 3.1 uses as is). Every error response is
 * `application/problem+json`, listing the stable codes it can carry.
 *
 * @see https://spec.openapis.org/oas/v3.1.0
 */
import { z } from "zod";
import { API_PREFIX, apiSchemas, type ProblemCode } from "../contract/api.js";
import { PROBLEM_CONTENT_TYPE, STATUS_BY_CODE } from "./problem.js";
import type { AnyRoute } from "./route-table.js";

type JsonSchema = Record<string, unknown>;

const COMPONENT_PREFIX = "#/components/schemas/";

/** Drop what OpenAPI does not need from a generated schema; keep `format: date-time` without zod's long regex. */
const override = (ctx: { jsonSchema: Record<string, unknown> }): void => {
  if (ctx.jsonSchema.format === "date-time") delete ctx.jsonSchema.pattern;
};

function clean(schema: JsonSchema): JsonSchema {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

function components(): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(apiSchemas, {
    target: "draft-2020-12",
    uri: (id) => `${COMPONENT_PREFIX}${id}`,
    override,
  }) as { schemas: Record<string, JsonSchema> };
  return Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, clean(s)]));
}

/** A `$ref` to a registered schema, or the schema inline. */
function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const id = apiSchemas.get(schema)?.id;
  if (id !== undefined) return { $ref: `${COMPONENT_PREFIX}${id}` };
  return clean(z.toJSONSchema(schema, { target: "draft-2020-12", io, override }) as JsonSchema);
}

/** Query or path parameters from an object schema. */
function parameters(schema: z.ZodType | undefined, where: "query" | "path"): JsonSchema[] {
  if (!schema) return [];
  const json = z.toJSONSchema(schema, { target: "draft-2020-12", io: "input", override }) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === "path" || (json.required ?? []).includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}

/** Problems any route can answer with, given what it takes. */
function commonProblems(route: AnyRoute): ProblemCode[] {
  const codes: ProblemCode[] = [];
  // Any authenticated route refuses a token without its scope, a fallback login outside its
  // allowance, and a cookie write without the CSRF token.
  if (route.auth) codes.push("ERR_UNAUTHENTICATED", "ERR_FORBIDDEN");
  if (route.body || route.query || route.params) codes.push("ERR_VALIDATION");
  if (route.body) codes.push("ERR_PAYLOAD_TOO_LARGE", "ERR_UNSUPPORTED_MEDIA_TYPE");
  // Every change writes its audit event first: no audit record, no action.
  if (route.method === "POST") codes.push("ERR_AUDIT_WRITE_FAILED");
  codes.push("ERR_INTERNAL", "ERR_STORAGE");
  // Every route but the probes sits behind the per-caller and per-address limits.
  if (!route.unlimited) codes.push("ERR_RATE_LIMITED");
  return codes;
}

function problemResponses(codes: readonly ProblemCode[]): Record<string, JsonSchema> {
  const byStatus = new Map<number, Set<ProblemCode>>();
  for (const code of codes) {
    const status = STATUS_BY_CODE[code];
    const set = byStatus.get(status) ?? new Set();
    set.add(code);
    byStatus.set(status, set);
  }
  return Object.fromEntries(
    [...byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, set]) => [
        String(status),
        {
          description: `Problem: ${[...set].join(", ")}`,
          content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: `${COMPONENT_PREFIX}Problem` } } },
          "x-problem-codes": [...set],
        },
      ]),
  );
}

export const openApiPath = (path: string): string => `${API_PREFIX}${path.replace(/:([A-Za-z_]+)/g, "{$1}")}`;

export function buildOpenApiDocument(routes: readonly AnyRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const params = [...parameters(route.params, "path"), ...parameters(route.query, "query")];
    const codes = [...new Set([...commonProblems(route), ...route.problems])];
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description === undefined ? {} : { description: route.description }),
      tags: [route.tag],
      security: route.auth ? [{ bearer: [] }] : [],
      ...(route.auth
        ? {
            // The API token scope this needs (`session`: people only), and whether a login via
            // local fallback (IdP down) may call it.
            "x-token-scope": route.scope ?? (route.method === "GET" ? "read" : "request"),
            "x-fallback-login": route.fallback === true,
          }
        : {}),
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: schemaOf(route.body, "input") } },
            },
          }
        : {}),
      responses: {
        [String(route.status)]: {
          description: route.status === 201 ? "Created" : "OK",
          content: { "application/json": { schema: schemaOf(route.response, "output") } },
        },
        ...problemResponses(codes),
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Breakglass API",
      version,
      description:
        "Emergency access: request a recovery role, approve it (two-person rule), let it expire at the target, review it. Errors are RFC 9457 problem details with a stable `code`; `instance` is the request id.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    paths,
    components: {
      schemas: components(),
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "An API token from `breakglass token create`: `Authorization: Bearer <id>.<secret>`",
        },
      },
    },
    tags: [
      { name: "meta", description: "Health, the API document, the caller" },
      { name: "roles", description: "Domains and recovery roles" },
      { name: "grants", description: "Requests, approvals, activation, revocation, review" },
      { name: "audit", description: "The tamper-evident audit log" },
    ],
  };
}
