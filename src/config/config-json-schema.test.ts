import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { configJsonSchema, configJsonSchemaText } from "../contract/config-schema.js";

const COMMITTED = resolve(import.meta.dirname, "../../schema/breakglass.schema.json");

type JsonSchema = { [key: string]: unknown; properties?: Record<string, JsonSchema> };

/** Every property of every object in the schema, with its path. */
function* properties(schema: unknown, path = ""): Generator<[string, JsonSchema]> {
  if (typeof schema !== "object" || schema === null) return;
  const s = schema as JsonSchema;
  for (const [name, sub] of Object.entries(s.properties ?? {})) {
    yield [`${path}${name}`, sub];
    yield* properties(sub, `${path}${name}.`);
  }
  for (const key of ["additionalProperties", "items"]) yield* properties(s[key], `${path}*.`);
  for (const key of ["oneOf", "anyOf"]) {
    for (const member of (s[key] as unknown[] | undefined) ?? []) yield* properties(member, path);
  }
}

describe("the published JSON Schema", () => {
  test("schema/breakglass.schema.json is up to date", () => {
    expect(
      readFileSync(COMMITTED, "utf8"),
      "schema/breakglass.schema.json is stale: run `npm run schema` and commit the result",
    ).toBe(configJsonSchemaText());
  });

  test("is draft 2020-12 and rejects unknown keys", () => {
    const schema = configJsonSchema();
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.title).toBe("Breakglass configuration");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(["version"]);
  });

  test("documents every key", () => {
    const undocumented = [...properties(configJsonSchema())]
      .filter(([, sub]) => typeof sub.description !== "string")
      .map(([path]) => path);
    expect(undocumented).toEqual([]);
  });
});
