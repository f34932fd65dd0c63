/**
 * A small, pure evaluator of AWS policy JSON (IAM identity policies and service control
 * policies), for the guardrail simulator: Effect, Action/NotAction, Resource/NotResource with
 * `*` and `?` wildcards, and Condition with the String*, Arn*, Bool and Date operators and their
 * `…IfExists` forms. It explains every decision. No I/O, no clock (`now` is passed in).
 *
 * Not modelled (say so when it matters): resource-based policies, permission boundaries, session
 * policies, VPC endpoint policies, `ForAnyValue`/`ForAllValues` set operators, policy variables
 * (`${aws:username}`), Numeric and IpAddress operators.
 *
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
 */

export type Effect = "Allow" | "Deny";

export interface Statement {
  readonly sid: string | null;
  /** Position in its document, for explanations: `Statement[2]`. */
  readonly index: number;
  readonly effect: Effect;
  readonly action: readonly string[] | null;
  readonly notAction: readonly string[] | null;
  readonly resource: readonly string[] | null;
  readonly notResource: readonly string[] | null;
  /** operator → context key → values */
  readonly condition: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

export interface PolicyDocument {
  /** A name for explanations (the file name). */
  readonly name: string;
  readonly statements: readonly Statement[];
}

export class PolicyError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const OPERATORS = new Set([
  "StringEquals",
  "StringNotEquals",
  "StringEqualsIgnoreCase",
  "StringNotEqualsIgnoreCase",
  "StringLike",
  "StringNotLike",
  "ArnEquals",
  "ArnLike",
  "ArnNotEquals",
  "ArnNotLike",
  "Bool",
  "DateEquals",
  "DateNotEquals",
  "DateLessThan",
  "DateLessThanEquals",
  "DateGreaterThan",
  "DateGreaterThanEquals",
]);

const NEGATED = new Set([
  "StringNotEquals",
  "StringNotEqualsIgnoreCase",
  "StringNotLike",
  "ArnNotEquals",
  "ArnNotLike",
  "DateNotEquals",
]);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function stringList(v: unknown, path: string): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new PolicyError(path, "must not be empty");
  return list.map((x, i) => {
    if (typeof x === "string") return x;
    if (typeof x === "boolean" || typeof x === "number") return String(x);
    throw new PolicyError(Array.isArray(v) ? `${path}[${i}]` : path, "must be a string or a list of strings");
  });
}

/** Parse and check a policy document; errors name the JSON path. */
export function parsePolicy(json: unknown, name: string): PolicyDocument {
  if (!isRecord(json)) throw new PolicyError("$", "a policy document is a JSON object");
  for (const key of Object.keys(json)) {
    if (!["Version", "Id", "Statement"].includes(key)) throw new PolicyError(`$.${key}`, "unknown top-level element");
  }
  if (json.Version !== undefined && json.Version !== "2012-10-17" && json.Version !== "2008-10-17") {
    throw new PolicyError("$.Version", `unknown version ${JSON.stringify(json.Version)}; use "2012-10-17"`);
  }
  if (json.Statement === undefined) throw new PolicyError("$.Statement", "missing");
  const raw = Array.isArray(json.Statement) ? json.Statement : [json.Statement];
  const statements = raw.map((s, index): Statement => {
    const p = Array.isArray(json.Statement) ? `$.Statement[${index}]` : "$.Statement";
    if (!isRecord(s)) throw new PolicyError(p, "a statement is an object");
    const known = [
      "Sid",
      "Effect",
      "Action",
      "NotAction",
      "Resource",
      "NotResource",
      "Principal",
      "NotPrincipal",
      "Condition",
    ];
    for (const key of Object.keys(s))
      if (!known.includes(key)) throw new PolicyError(`${p}.${key}`, "unknown statement element");
    if (s.Effect !== "Allow" && s.Effect !== "Deny") throw new PolicyError(`${p}.Effect`, 'must be "Allow" or "Deny"');
    if ((s.Action === undefined) === (s.NotAction === undefined)) {
      throw new PolicyError(p, "needs exactly one of Action or NotAction");
    }
    if (s.Resource !== undefined && s.NotResource !== undefined) {
      throw new PolicyError(p, "has both Resource and NotResource");
    }
    const condition: Record<string, Record<string, string[]>> = {};
    if (s.Condition !== undefined) {
      if (!isRecord(s.Condition)) throw new PolicyError(`${p}.Condition`, "must be an object");
      for (const [op, block] of Object.entries(s.Condition)) {
        const base = op.endsWith("IfExists") ? op.slice(0, -"IfExists".length) : op;
        if (op.startsWith("ForAnyValue:") || op.startsWith("ForAllValues:")) {
          throw new PolicyError(
            `${p}.Condition.${op}`,
            "set operators (ForAnyValue/ForAllValues) are not supported by this simulator",
          );
        }
        if (!OPERATORS.has(base))
          throw new PolicyError(`${p}.Condition.${op}`, "unknown or unsupported condition operator");
        if (!isRecord(block)) throw new PolicyError(`${p}.Condition.${op}`, "must be an object of context keys");
        condition[op] = Object.fromEntries(
          Object.entries(block).map(([k, v]) => [k, stringList(v, `${p}.Condition.${op}.${k}`)]),
        );
      }
    }
    const list = (key: string) => (s[key] === undefined ? null : stringList(s[key], `${p}.${key}`));
    return {
      sid: typeof s.Sid === "string" ? s.Sid : null,
      index,
      effect: s.Effect,
      action: list("Action"),
      notAction: list("NotAction"),
      resource: list("Resource"),
      notResource: list("NotResource"),
      condition,
    };
  });
  return { name, statements };
}

/** `*` matches any run of characters, `?` exactly one. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  // Iterative glob match with backtracking on the last `*`.
  let pi = 0;
  let vi = 0;
  let star = -1;
  let mark = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === "?" || p[pi] === v[vi])) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === "*") {
      star = pi++;
      mark = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

/**
 * ARN matching as ArnLike does it: both split into their six colon-separated parts (the last part
 * keeps any further colons) and compared part by part with wildcards, case-sensitively. A
 * wildcard never spans parts.
 */
export function arnLike(pattern: string, arn: string): boolean {
  const split = (s: string): string[] | null => {
    const parts = s.split(":");
    if (parts.length < 6 || (parts[0] !== "arn" && parts[0] !== "*")) return null;
    return [...parts.slice(0, 5), parts.slice(5).join(":")];
  };
  if (pattern === "*") return true;
  const p = split(pattern);
  const a = split(arn);
  if (!p || !a) return false;
  return p.every((part, i) => wildcardMatch(part, a[i] ?? ""));
}

export type ContextValue = string | readonly string[];

export interface RequestContext {
  readonly action: string;
  readonly resource: string;
  /** Condition keys, case-insensitive names (`aws:PrincipalArn`). */
  readonly keys: Readonly<Record<string, ContextValue>>;
  /** For Date operators (epoch ms). */
  readonly now: number;
}

/**
 * The request context for a principal. For an assumed-role session ARN
 * (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) `aws:PrincipalArn` is the role's ARN
 * (`arn:aws:iam::ACCOUNT:role/ROLE`), as AWS sets it — without the role's path, which the session
 * ARN does not carry; pass the role ARN itself for roles with a path.
 */
export function contextFor(
  principalArn: string,
  action: string,
  opts: { resource?: string; keys?: Record<string, ContextValue>; now?: number } = {},
): RequestContext {
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(principalArn);
  const principal = session ? `arn:${session[1]}:iam::${session[2]}:role/${session[3]}` : principalArn;
  const account = /^arn:[^:]+:[^:]*:[^:]*:(\d{12}):/.exec(principalArn)?.[1];
  return {
    action,
    resource: opts.resource ?? "*",
    keys: {
      "aws:PrincipalArn": principal,
      ...(account ? { "aws:PrincipalAccount": account } : {}),
      ...(opts.keys ?? {}),
    },
    now: opts.now ?? 0,
  };
}

const lookup = (ctx: RequestContext, key: string): readonly string[] | undefined => {
  const found = Object.entries(ctx.keys).find(([k]) => k.toLowerCase() === key.toLowerCase());
  if (!found) return undefined;
  return typeof found[1] === "string" ? [found[1]] : found[1];
};

function valueMatches(op: string, pattern: string, value: string): boolean {
  switch (op) {
    case "StringEquals":
    case "StringNotEquals":
      return pattern === value;
    case "StringEqualsIgnoreCase":
    case "StringNotEqualsIgnoreCase":
      return pattern.toLowerCase() === value.toLowerCase();
    case "StringLike":
    case "StringNotLike":
      return wildcardMatch(pattern, value);
    case "ArnEquals":
    case "ArnNotEquals":
    case "ArnLike":
    case "ArnNotLike":
      return arnLike(pattern, value);
    case "Bool":
      return pattern.toLowerCase() === value.toLowerCase();
    default: {
      const a = Date.parse(value);
      const b = Date.parse(pattern);
      if (Number.isNaN(a) || Number.isNaN(b)) return false;
      if (op === "DateEquals" || op === "DateNotEquals") return a === b;
      if (op === "DateLessThan") return a < b;
      if (op === "DateLessThanEquals") return a <= b;
      if (op === "DateGreaterThan") return a > b;
      return a >= b;
    }
  }
}

/** One condition block: every operator and every key in it must hold (AND); values are OR. */
function conditionHolds(stmt: Statement, ctx: RequestContext, why: string[]): boolean {
  for (const [opName, keys] of Object.entries(stmt.condition)) {
    const ifExists = opName.endsWith("IfExists");
    const op = ifExists ? opName.slice(0, -"IfExists".length) : opName;
    for (const [key, patterns] of Object.entries(keys)) {
      const values =
        lookup(ctx, key) ?? (key.toLowerCase() === "aws:currenttime" ? [new Date(ctx.now).toISOString()] : undefined);
      let holds: boolean;
      if (values === undefined) {
        // AWS: a missing key makes …IfExists true; a negated operator is true; anything else false.
        holds = ifExists || NEGATED.has(op);
        why.push(`${opName} ${key}: key not in the request → ${holds ? "true" : "false"}`);
      } else {
        const any = values.some((v) => patterns.some((p) => valueMatches(op, p, v)));
        holds = NEGATED.has(op) ? !any : any;
        why.push(`${opName} ${key}=${values.join(",")} vs ${patterns.join(" | ")} → ${holds ? "true" : "false"}`);
      }
      if (!holds) return false;
    }
  }
  return true;
}

const actionMatches = (patterns: readonly string[], action: string) =>
  patterns.some((p) => wildcardMatch(p, action, true));
/** A request for resource `*` (not given) is covered only by `*`. */
const resourceMatches = (patterns: readonly string[], resource: string) =>
  patterns.some(
    (p) =>
      p === "*" || (resource !== "*" && (p.startsWith("arn:") ? arnLike(p, resource) : wildcardMatch(p, resource))),
  );

/** Does the statement apply to this request (action, resource and condition)? */
export function statementApplies(stmt: Statement, ctx: RequestContext, why: string[]): boolean {
  const actionIn = stmt.action
    ? actionMatches(stmt.action, ctx.action)
    : !actionMatches(stmt.notAction ?? [], ctx.action);
  if (!actionIn) {
    why.push(`action ${ctx.action} not covered`);
    return false;
  }
  const resourceIn = stmt.resource
    ? resourceMatches(stmt.resource, ctx.resource)
    : stmt.notResource
      ? !resourceMatches(stmt.notResource, ctx.resource)
      : true;
  if (!resourceIn) {
    why.push(`resource ${ctx.resource} not covered`);
    return false;
  }
  return conditionHolds(stmt, ctx, why);
}

export type Decision = "allow" | "explicit_deny" | "implicit_deny";

export interface Evaluation {
  readonly decision: Decision;
  /** One line per statement looked at, and the reason for the decision last. */
  readonly explanation: readonly string[];
}

const label = (doc: PolicyDocument, s: Statement) => `${doc.name} Statement[${s.index}]${s.sid ? ` (${s.sid})` : ""}`;

function scan(
  docs: readonly PolicyDocument[],
  ctx: RequestContext,
  lines: string[],
): { deny: string | null; allow: string | null } {
  let deny: string | null = null;
  let allow: string | null = null;
  for (const doc of docs) {
    for (const s of doc.statements) {
      const why: string[] = [];
      const applies = statementApplies(s, ctx, why);
      lines.push(
        `${label(doc, s)} ${s.effect}: ${applies ? "applies" : "does not apply"}${why.length ? ` — ${why.join("; ")}` : ""}`,
      );
      if (applies && s.effect === "Deny") deny ??= label(doc, s);
      if (applies && s.effect === "Allow") allow ??= label(doc, s);
    }
  }
  return { deny, allow };
}

export interface EvaluateInput {
  /** Identity policies of the principal; null = not modelled (assume they allow). */
  readonly identity: readonly PolicyDocument[] | null;
  /** Service control policies on the account; null = none. */
  readonly scps: readonly PolicyDocument[] | null;
  /**
   * A deny-list SCP relies on AWS's default `FullAWSAccess` SCP for its Allow; model it (default
   * true) or evaluate only the given SCPs.
   */
  readonly scpDefaultAllow?: boolean;
}

/**
 * AWS's order: an explicit Deny anywhere wins; then the SCPs must allow (ceiling); then the
 * identity policies must allow; otherwise implicit deny.
 */
export function evaluate(input: EvaluateInput, ctx: RequestContext): Evaluation {
  const lines: string[] = [];
  const scp = input.scps ? scan(input.scps, ctx, lines) : null;
  const identity = input.identity ? scan(input.identity, ctx, lines) : null;
  const deny = scp?.deny ?? identity?.deny ?? null;
  if (deny) return { decision: "explicit_deny", explanation: [...lines, `DENY: explicitly denied by ${deny}`] };
  if (scp && !scp.allow && input.scpDefaultAllow === false) {
    return {
      decision: "implicit_deny",
      explanation: [...lines, "DENY: no SCP allows it (implicit deny at the SCP ceiling)"],
    };
  }
  if (identity && !identity.allow) {
    return { decision: "implicit_deny", explanation: [...lines, "DENY: no identity policy allows it (implicit deny)"] };
  }
  const by = [
    scp ? (scp.allow ?? "the default FullAWSAccess SCP") : null,
    identity ? identity.allow : "identity policies (not modelled; assumed to allow)",
  ].filter((x): x is string => x !== null);
  return { decision: "allow", explanation: [...lines, `ALLOW: allowed by ${by.join(" and ")}`] };
}
