/**
 * Turning problems into `ConfigIssue`s people can act on: zod issues rewritten with a fix-it hint,
 * "did you mean" suggestions by edit distance, and line/column positions from the YAML source.
 */
import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter, type Node, type Pair } from "yaml";
import type { z } from "zod";
import { configHints } from "../contract/config-schema.js";
import type { ConfigIssue } from "../core/errors.js";
import { closest } from "../core/suggest.js";

export type PathSegment = string | number;

/** A problem found by a check, before it is located in the source. */
export interface Problem {
  readonly path: readonly PathSegment[];
  readonly message: string;
  readonly hint?: string;
  /** Point at the key of the last path segment instead of its value (unknown or misnamed keys). */
  readonly at?: "key" | "value";
}

export function problem(path: readonly PathSegment[], message: string, hint?: string, at?: "key"): Problem {
  return { path, message, ...(hint === undefined ? {} : { hint }), ...(at === undefined ? {} : { at }) };
}

export function pathText(path: readonly PathSegment[]): string {
  return path.map(String).join(".");
}

// ---------------------------------------------------------------------------------------------
// Suggestions

/** `did you mean \`x\`?`, or else the list of what exists (`what` names the list). */
export function suggest(word: string, candidates: Iterable<string>, what: string, otherwise?: string): string {
  const list = [...candidates];
  const near = closest(word, list);
  if (near !== undefined) return `did you mean \`${near}\`?`;
  if (list.length === 0) return otherwise ?? `no ${what} are defined`;
  return `${what}: ${list.join(", ")}${otherwise ? `; or ${otherwise}` : ""}`;
}

export function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

// ---------------------------------------------------------------------------------------------
// Walking a zod schema along a path (for hints and allowed keys)

interface Def {
  readonly type: string;
  readonly innerType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly getter?: () => z.ZodType;
  readonly shape?: Record<string, z.ZodType>;
  readonly keyType?: z.ZodType;
  readonly valueType?: z.ZodType;
  readonly element?: z.ZodType;
  readonly items?: readonly z.ZodType[];
  readonly options?: readonly z.ZodType[];
  readonly discriminator?: string;
  readonly values?: readonly unknown[];
  readonly format?: string;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

const WRAPPERS = new Set(["optional", "nullable", "default", "prefault", "readonly", "catch", "nonoptional"]);

/** The schema and every wrapper around it, outermost first. */
function layers(schema: z.ZodType): z.ZodType[] {
  const out: z.ZodType[] = [];
  let current: z.ZodType | undefined = schema;
  while (current && out.length < 32) {
    out.push(current);
    const def = defOf(current);
    if (WRAPPERS.has(def.type)) current = def.innerType;
    else if (def.type === "pipe") current = def.in;
    else if (def.type === "lazy") current = def.getter?.();
    else current = undefined;
  }
  return out;
}

const base = (schema: z.ZodType): z.ZodType => layers(schema).at(-1) ?? schema;

const isObjectLike = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

/** The member of a union that `data` is meant to be (by discriminator, else the first object with the key). */
function unionMember(def: Def, data: unknown, key?: PathSegment): z.ZodType | undefined {
  const options = def.options ?? [];
  if (def.discriminator !== undefined && isObjectLike(data)) {
    const tag = data[def.discriminator];
    const found = options.find((o) => {
      const literal = defOf(base(o)).shape?.[def.discriminator ?? ""];
      return literal !== undefined && (defOf(base(literal)).values ?? []).includes(tag);
    });
    if (found) return found;
  }
  if (key !== undefined) return options.find((o) => defOf(base(o)).shape?.[String(key)] !== undefined);
  return undefined;
}

function child(schema: z.ZodType, seg: PathSegment, data: unknown): z.ZodType | undefined {
  const b = base(schema);
  const def = defOf(b);
  switch (def.type) {
    case "object":
      return def.shape?.[String(seg)];
    case "record":
      return def.valueType;
    case "array":
      return def.element;
    case "tuple":
      return def.items?.[Number(seg)];
    case "union": {
      const member = unionMember(def, data, seg);
      return member ? child(member, seg, data) : undefined;
    }
    default:
      return undefined;
  }
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let v = data;
  for (const seg of path) {
    if (!isObjectLike(v)) return undefined;
    v = (v as Record<string, unknown>)[String(seg)];
  }
  return v;
}

function schemaAt(root: z.ZodType, path: readonly PathSegment[], data: unknown): z.ZodType | undefined {
  let schema: z.ZodType | undefined = root;
  for (let i = 0; i < path.length && schema; i++) {
    const seg = path[i] as PathSegment;
    schema = child(schema, seg, valueAt(data, path.slice(0, i)));
  }
  return schema;
}

function hintOf(schema: z.ZodType | undefined): string | undefined {
  if (!schema) return undefined;
  for (const layer of layers(schema)) {
    const meta = configHints.get(layer);
    if (meta) return meta.hint;
  }
  return undefined;
}

const hintAt = (root: z.ZodType, path: readonly PathSegment[], data: unknown) => hintOf(schemaAt(root, path, data));

/** The hint for a key of the record at `path` (names that must follow a pattern). */
function keyHintAt(root: z.ZodType, path: readonly PathSegment[], data: unknown): string | undefined {
  const record = schemaAt(root, path, data);
  return record ? hintOf(defOf(base(record)).keyType) : undefined;
}

function allowedKeys(root: z.ZodType, path: readonly PathSegment[], data: unknown): string[] {
  const schema = schemaAt(root, path, data);
  if (!schema) return [];
  let def = defOf(base(schema));
  if (def.type === "union") {
    const member = unionMember(def, valueAt(data, path));
    if (member) def = defOf(base(member));
  }
  return Object.keys(def.shape ?? {});
}

// ---------------------------------------------------------------------------------------------
// zod issues → problems

const EXAMPLES: Readonly<Record<string, string>> = {
  version: "1",
  target: "pg-main",
  max_duration: "2h",
  approval: '"2 of sre-leads"',
  requesters: "[oncall]",
  connector: "exec",
  driver: "sqlite",
};

const KINDS: Readonly<Record<string, string>> = {
  users: "user",
  groups: "group",
  domains: "domain",
  roles: "role",
  targets: "target",
};

function expectedWords(expected: string): string {
  switch (expected) {
    case "object":
    case "record":
      return "a mapping";
    case "array":
      return "a list";
    case "int":
      return "a whole number";
    case "number":
      return "a number";
    case "string":
      return "text";
    case "boolean":
      return "true or false";
    default:
      return expected;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `the text ${JSON.stringify(value)}`;
  if (typeof value === "number") return Number.isInteger(value) ? `the number ${value}` : `the fraction ${value}`;
  return String(value);
}

/**
 * Rewrite zod's issues as problems with paths, messages and hints. `root` is the schema that was
 * parsed and `data` what it parsed; `prefix` places them in the file (for connector settings).
 */
export function problemsFromZod(
  issues: readonly z.core.$ZodIssue[],
  root: z.ZodType,
  data: unknown,
  prefix: readonly PathSegment[] = [],
): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const local = issue.path.map((p) => (typeof p === "number" ? p : String(p)));
    const path = [...prefix, ...local];
    const value = valueAt(data, local);
    const last = local.at(-1);
    const lastName = last === undefined ? "" : String(last);
    const hint = hintAt(root, local, data);
    const parent = valueAt(data, local.slice(0, -1));
    if (
      local.length > 0 &&
      isObjectLike(parent) &&
      !Array.isArray(parent) &&
      !(lastName in parent) &&
      (issue.code === "invalid_type" || issue.code === "invalid_value")
    ) {
      // Examples fit the file's own keys, not a connector's settings.
      const example = prefix.length === 0 ? EXAMPLES[lastName] : undefined;
      out.push(problem(path, `\`${lastName}\` is required`, example ? `add \`${lastName}: ${example}\`` : hint));
      continue;
    }
    switch (issue.code) {
      case "unrecognized_keys": {
        const allowed = allowedKeys(root, local, data);
        for (const key of issue.keys) {
          out.push(
            problem(
              [...path, key],
              `unknown key \`${key}\``,
              suggest(key, allowed, "allowed keys here", "remove it"),
              "key",
            ),
          );
        }
        break;
      }
      case "invalid_key": {
        const kind = KINDS[String(local.at(-2) ?? "")] ?? "";
        const keyHint = keyHintAt(root, local.slice(0, -1), data);
        out.push(problem(path, `"${lastName}" is not a valid ${kind ? `${kind} ` : ""}name`, keyHint, "key"));
        break;
      }
      case "invalid_union": {
        const disc = (issue as { discriminator?: string }).discriminator;
        const options = (issue as { options?: readonly unknown[] }).options ?? [];
        const holder = valueAt(data, disc !== undefined && lastName === disc ? local.slice(0, -1) : local);
        const tag = disc !== undefined && isObjectLike(holder) ? holder[disc] : undefined;
        if (disc !== undefined) {
          const choices = options.map(String).join(", ");
          out.push(
            tag === undefined
              ? problem(path, `\`${disc}\` is required`, `add \`${disc}:\` with one of: ${choices}`)
              : problem(path, `unknown ${disc} ${JSON.stringify(tag)}`, `use one of: ${choices}`),
          );
        } else {
          out.push(problem(path, issue.message, hint));
        }
        break;
      }
      case "invalid_type": {
        if (path.length === 0) {
          out.push(
            problem(
              path,
              value === null || value === undefined
                ? "the file is empty"
                : `expected a mapping at the top level, got ${describeValue(value)}`,
              "start the file with `version: 1` and add users, groups, domains and targets",
            ),
          );
        } else {
          const schema = schemaAt(root, local, data);
          const integer = schema !== undefined && defOf(base(schema)).format?.includes("int") === true;
          const expected = expectedWords(integer ? "int" : issue.expected);
          // A bare number where a duration goes: the schema's own message names the missing unit.
          const own = issue.message.includes("has no unit") ? issue.message : null;
          out.push(
            problem(path, own ?? `expected ${expected}, got ${describeValue(value)}`, hint ?? `write ${expected} here`),
          );
        }
        break;
      }
      case "invalid_value": {
        const values = issue.values.map((v) => JSON.stringify(v)).join(" or ");
        out.push(problem(path, `must be ${values}, got ${describeValue(value)}`, hint ?? `use ${values}`));
        break;
      }
      case "too_small": {
        const min = String(issue.minimum);
        const message =
          issue.origin === "string"
            ? "must not be empty"
            : issue.origin === "array"
              ? issue.message.startsWith("Too small")
                ? `must list at least ${min}`
                : issue.message
              : `must be at least ${min}, got ${describeValue(value)}`;
        out.push(problem(path, message, hint));
        break;
      }
      case "too_big": {
        out.push(problem(path, `must be at most ${String(issue.maximum)}, got ${describeValue(value)}`, hint));
        break;
      }
      case "invalid_format": {
        const message = issue.message.startsWith("Invalid")
          ? `${describeValue(value)} is not a valid ${issue.format}`
          : issue.message;
        out.push(problem(path, message, hint));
        break;
      }
      case "custom": {
        const own = (issue.params as { hint?: unknown } | undefined)?.hint;
        out.push(problem(path, issue.message, typeof own === "string" ? own : hint));
        break;
      }
      default:
        out.push(problem(path, issue.message, hint));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Locating paths in the YAML source

export interface Position {
  readonly line: number;
  readonly column: number;
}

export type Locator = (path: readonly PathSegment[], at: "key" | "value") => Position | undefined;

/**
 * Find where a path sits in the source. Scalars point at the value; mappings and lists at their
 * key; a path that does not exist (a missing key) at the deepest part that does: its parent.
 */
export function createLocator(doc: Document, lineCounter: LineCounter): Locator {
  const pos = (node: Node | null | undefined): Position | undefined => {
    const offset = node?.range?.[0];
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  return (path, at) => {
    let node: unknown = doc.contents;
    let pair: Pair<unknown, unknown> | undefined;
    let found = 0;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const next = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
        if (!next) break;
        pair = next;
        node = next.value;
      } else if (isSeq(node)) {
        const next = node.items[Number(seg)];
        if (next === undefined) break;
        pair = undefined;
        node = next;
      } else {
        break;
      }
      found++;
    }
    const keyNode = isScalar(pair?.key) ? pair.key : undefined;
    const complete = found === path.length;
    if (complete && at === "value" && isScalar(node)) return pos(node);
    // A missing key, an empty value, a collection, or the key asked for: the key line.
    if (keyNode && (found > 0 || !complete)) return pos(keyNode) ?? pos(node as Node);
    return pos(node as Node) ?? { line: 1, column: 1 };
  };
}

export function locate(problems: readonly Problem[], locator: Locator): ConfigIssue[] {
  return problems.map((p) => {
    const where = locator(p.path, p.at ?? "value");
    return {
      path: pathText(p.path),
      message: p.message,
      ...(p.hint === undefined ? {} : { hint: p.hint }),
      ...(where ? { line: where.line, column: where.column } : {}),
    };
  });
}
