/**
 * A local stand-in for the AWS endpoints the `aws` connector calls — AWS itself is unreachable
 * from these machines. It speaks the query protocol (form-encoded POST, XML answers in AWS's
 * namespaces and error shapes) for exactly: STS AssumeRole and GetCallerIdentity, IAM GetRole,
 * GetRolePolicy, PutRolePolicy, DeleteRolePolicy; and the console federation endpoint's
 * getSigninToken. Each successful AssumeRole also leaves a CloudTrail record (`takeTrail`). Every request's SigV4 signature is verified against the keys it knows (the
 * broker's static key and the temporary keys it issued, with their session tokens), and
 * authorization of temporary credentials applies the role's inline Deny statements with the
 * session's tags and token issue time — evaluated by the guardrail's policy evaluator.
 *
 * The SDK under test is real: signing, serialisation, XML parsing and error mapping are AWS's.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { evaluate, parsePolicy } from "../../src/guardrail/iam-policy.js";

export const ACCOUNT = "123456789012";
export const BROKER_KEY = { accessKeyId: "AKIABREAKGLASSBROKER", secretAccessKey: "broker-secret-key-for-tests-only" };
/** Another IAM user allowed to assume the roles: standing access someone forgot to remove. */
export const OTHER_KEY = { accessKeyId: "AKIAMALLORYSTANDING", secretAccessKey: "mallory-secret-key-for-tests-only" };
const USERS: Readonly<Record<string, string>> = {
  [BROKER_KEY.accessKeyId]: "broker",
  [OTHER_KEY.accessKeyId]: "mallory",
};

const STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/";
const IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/";

export interface FakeSession {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly roleArn: string;
  readonly sessionName: string;
  readonly sourceIdentity: string | null;
  readonly tags: Readonly<Record<string, string>>;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

export interface RecordedRequest {
  readonly service: "sts" | "iam" | "federation";
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
  readonly accessKeyId: string | null;
}

export interface FakeAws {
  readonly stsEndpoint: string;
  readonly iamEndpoint: string;
  readonly federationEndpoint: string;
  readonly requests: RecordedRequest[];
  readonly sessions: Map<string, FakeSession>;
  /** role name → policy name → document (JSON text) */
  readonly rolePolicies: Map<string, Map<string, string>>;
  /** Make the next calls of `action` fail with this AWS error code and HTTP status. */
  failNext(action: string, code: string, status: number, times?: number): void;
  /** Roles that exist, with their MaxSessionDuration in seconds. */
  addRole(name: string, maxSessionS?: number): string;
  /**
   * CloudTrail records of the successful AssumeRole calls so far (AWS's documented record shape),
   * taken out of the trail: what CloudTrail would deliver in its next log file.
   */
  takeTrail(): Record<string, unknown>[];
  stop(): Promise<void>;
}

const xmlEscape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");
const hmac = (key: Buffer | string, s: string) => createHmac("sha256", key).update(s, "utf8").digest();

/** RFC 3986 encoding as SigV4 wants it. */
const uriEncode = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * SigV4 check of an incoming request: recompute the signature from the canonical request and the
 * secret of the access key named in the Authorization header.
 * @returns the access key id, or an error code AWS would answer with.
 */
function verifySigV4(
  req: IncomingMessage,
  body: string,
  secretFor: (akid: string) => { secret: string; token: string | null } | null,
): { ok: true; akid: string } | { ok: false; code: string; message: string } {
  const auth = req.headers.authorization ?? "";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) return { ok: false, code: "IncompleteSignature", message: "missing or malformed Authorization header" };
  const [, akid = "", date = "", region = "", service = "", signedHeaders = "", signature = ""] = m;
  const known = secretFor(akid);
  if (!known)
    return {
      ok: false,
      code: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
    };
  if (known.token !== null && req.headers["x-amz-security-token"] !== known.token) {
    return {
      ok: false,
      code: "InvalidClientTokenId",
      message: "The security token included in the request is invalid.",
    };
  }
  const amzDate = String(req.headers["x-amz-date"] ?? "");
  const url = new URL(req.url ?? "/", "http://x");
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const names = signedHeaders.split(";");
  const headers = names
    .map((n) => {
      const raw = req.headers[n];
      const v = Array.isArray(raw) ? raw.join(",") : (raw ?? "");
      return `${n}:${String(v).trim().replace(/\s+/g, " ")}\n`;
    })
    .join("");
  const payloadHash = String(req.headers["x-amz-content-sha256"] ?? sha256(body));
  const canonical = [req.method, url.pathname || "/", query, headers, signedHeaders, payloadHash].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${known.secret}`, date), region), service), "aws4_request");
  const expected = hmac(key, toSign).toString("hex");
  if (expected !== signature) {
    return {
      ok: false,
      code: "SignatureDoesNotMatch",
      message: "The request signature we calculated does not match the signature you provided.",
    };
  }
  return { ok: true, akid };
}

export async function startFakeAws(): Promise<FakeAws> {
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, FakeSession>();
  const rolePolicies = new Map<string, Map<string, string>>();
  const roles = new Map<string, number>();
  const failures = new Map<string, { code: string; status: number; times: number }>();
  let trail: Record<string, unknown>[] = [];

  const secretFor = (akid: string) => {
    if (akid === BROKER_KEY.accessKeyId) return { secret: BROKER_KEY.secretAccessKey, token: null };
    if (akid === OTHER_KEY.accessKeyId) return { secret: OTHER_KEY.secretAccessKey, token: null };
    const s = sessions.get(akid);
    return s ? { secret: s.secretAccessKey, token: s.sessionToken } : null;
  };

  const send = (res: ServerResponse, status: number, ns: string, action: string, result: string) => {
    res.writeHead(status, { "content-type": "text/xml" });
    res.end(
      `<${action}Response xmlns="${ns}">${result ? `<${action}Result>${result}</${action}Result>` : ""}<ResponseMetadata><RequestId>${randomBytes(8).toString("hex")}</RequestId></ResponseMetadata></${action}Response>`,
    );
  };
  const error = (res: ServerResponse, status: number, ns: string, code: string, message: string) => {
    res.writeHead(status, { "content-type": "text/xml" });
    res.end(
      `<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomBytes(8).toString("hex")}</RequestId></ErrorResponse>`,
    );
  };

  /** Is this temporary credential allowed to act right now? Denied by expiry or by the role's inline Deny statements. */
  const authorize = (s: FakeSession, action: string): string | null => {
    if (Date.now() >= s.expiresAt) return "The security token included in the request is expired";
    const roleName = s.roleArn.split("/").pop() ?? "";
    for (const [name, text] of rolePolicies.get(roleName) ?? []) {
      const doc = parsePolicy(JSON.parse(text), name);
      const keys: Record<string, string> = {
        "aws:PrincipalArn": s.roleArn,
        "aws:TokenIssueTime": new Date(s.issuedAt).toISOString(),
        ...(s.sourceIdentity ? { "aws:SourceIdentity": s.sourceIdentity } : {}),
        ...Object.fromEntries(Object.entries(s.tags).map(([k, v]) => [`aws:PrincipalTag/${k}`, v])),
      };
      const r = evaluate({ identity: [doc], scps: null }, { action, resource: "*", keys, now: Date.now() });
      if (r.decision === "explicit_deny") {
        return `User: arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${s.sessionName} is not authorized to perform: ${action} with an explicit deny in an identity-based policy`;
      }
    }
    return null;
  };

  const tagsOf = (p: Record<string, string>): Record<string, string> => {
    const out: Record<string, string> = {};
    for (let i = 1; p[`Tags.member.${i}.Key`] !== undefined; i++) {
      out[p[`Tags.member.${i}.Key`] ?? ""] = p[`Tags.member.${i}.Value`] ?? "";
    }
    return out;
  };

  const handleSts = (res: ServerResponse, action: string, p: Record<string, string>, akid: string) => {
    if (action === "AssumeRole") {
      const user = USERS[akid];
      if (user === undefined) return error(res, 403, STS_NS, "AccessDenied", "only IAM users may assume roles here");
      const roleArn = p.RoleArn ?? "";
      const roleName = roleArn.split("/").pop() ?? "";
      const max = roles.get(roleName);
      if (max === undefined)
        return error(res, 403, STS_NS, "AccessDenied", `Not authorized to perform sts:AssumeRole on ${roleArn}`);
      const duration = Number(p.DurationSeconds ?? 3600);
      if (duration < 900 || duration > max) {
        return error(
          res,
          400,
          STS_NS,
          "ValidationError",
          `The requested DurationSeconds exceeds the MaxSessionDuration set for this role.`,
        );
      }
      const session: FakeSession = {
        accessKeyId: `ASIA${randomBytes(8).toString("hex").toUpperCase()}`,
        secretAccessKey: randomBytes(30).toString("base64"),
        sessionToken: randomBytes(48).toString("base64"),
        roleArn,
        sessionName: p.RoleSessionName ?? "",
        sourceIdentity: p.SourceIdentity ?? null,
        tags: tagsOf(p),
        issuedAt: Date.now(),
        expiresAt: Date.now() + duration * 1000,
      };
      sessions.set(session.accessKeyId, session);
      trail.push({
        eventVersion: "1.08",
        userIdentity: {
          type: "IAMUser",
          principalId: `AIDA${user.toUpperCase()}`,
          arn: `arn:aws:iam::${ACCOUNT}:user/${user}`,
          accountId: ACCOUNT,
          accessKeyId: akid,
          userName: user,
        },
        eventTime: new Date(session.issuedAt).toISOString().replace(/\.\d{3}Z$/, "Z"),
        eventSource: "sts.amazonaws.com",
        eventName: "AssumeRole",
        awsRegion: "eu-central-1",
        sourceIPAddress: "127.0.0.1",
        userAgent: "aws-sdk-js",
        requestParameters: {
          roleArn,
          roleSessionName: session.sessionName,
          durationSeconds: duration,
          ...(session.sourceIdentity ? { sourceIdentity: session.sourceIdentity } : {}),
          ...(Object.keys(session.tags).length > 0
            ? { tags: Object.entries(session.tags).map(([key, value]) => ({ key, value })) }
            : {}),
        },
        responseElements: {
          credentials: { accessKeyId: session.accessKeyId, expiration: new Date(session.expiresAt).toUTCString() },
          assumedRoleUser: {
            assumedRoleId: `AROAFAKE:${session.sessionName}`,
            arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${session.sessionName}`,
          },
        },
        requestID: randomBytes(16).toString("hex"),
        eventID: randomBytes(16).toString("hex"),
        readOnly: true,
        eventType: "AwsApiCall",
        managementEvent: true,
        recipientAccountId: ACCOUNT,
        eventCategory: "Management",
      });
      return send(
        res,
        200,
        STS_NS,
        "AssumeRole",
        `${session.sourceIdentity ? `<SourceIdentity>${xmlEscape(session.sourceIdentity)}</SourceIdentity>` : ""}<AssumedRoleUser><Arn>arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${xmlEscape(session.sessionName)}</Arn><AssumedRoleId>AROAFAKE:${xmlEscape(session.sessionName)}</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>${session.accessKeyId}</AccessKeyId><SecretAccessKey>${xmlEscape(session.secretAccessKey)}</SecretAccessKey><SessionToken>${xmlEscape(session.sessionToken)}</SessionToken><Expiration>${new Date(session.expiresAt).toISOString()}</Expiration></Credentials><PackedPolicySize>10</PackedPolicySize>`,
      );
    }
    if (action === "GetCallerIdentity") {
      const s = sessions.get(akid);
      const arn = s
        ? `arn:aws:sts::${ACCOUNT}:assumed-role/${s.roleArn.split("/").pop()}/${s.sessionName}`
        : `arn:aws:iam::${ACCOUNT}:user/broker`;
      return send(
        res,
        200,
        STS_NS,
        "GetCallerIdentity",
        `<Arn>${xmlEscape(arn)}</Arn><UserId>${akid}</UserId><Account>${ACCOUNT}</Account>`,
      );
    }
    return error(res, 400, STS_NS, "InvalidAction", `unsupported action ${action}`);
  };

  const handleIam = (res: ServerResponse, action: string, p: Record<string, string>, akid: string) => {
    const roleName = p.RoleName ?? "";
    if (!roles.has(roleName))
      return error(res, 404, IAM_NS, "NoSuchEntity", `The role with name ${roleName} cannot be found.`);
    const policies = rolePolicies.get(roleName) ?? new Map<string, string>();
    rolePolicies.set(roleName, policies);
    if (action === "GetRole") {
      return send(
        res,
        200,
        IAM_NS,
        "GetRole",
        `<Role><RoleName>${xmlEscape(roleName)}</RoleName><Arn>arn:aws:iam::${ACCOUNT}:role/${xmlEscape(roleName)}</Arn><Path>/</Path><RoleId>AROAFAKE</RoleId><CreateDate>2026-01-01T00:00:00Z</CreateDate><MaxSessionDuration>${roles.get(roleName)}</MaxSessionDuration></Role>`,
      );
    }
    if (akid !== BROKER_KEY.accessKeyId)
      return error(res, 403, IAM_NS, "AccessDenied", `not authorized to perform iam:${action}`);
    const name = p.PolicyName ?? "";
    if (action === "GetRolePolicy") {
      const doc = policies.get(name);
      if (doc === undefined)
        return error(res, 404, IAM_NS, "NoSuchEntity", `The role policy with name ${name} cannot be found.`);
      return send(
        res,
        200,
        IAM_NS,
        "GetRolePolicy",
        `<RoleName>${xmlEscape(roleName)}</RoleName><PolicyName>${xmlEscape(name)}</PolicyName><PolicyDocument>${encodeURIComponent(doc)}</PolicyDocument>`,
      );
    }
    if (action === "PutRolePolicy") {
      const doc = p.PolicyDocument ?? "";
      if (doc.replace(/\s/g, "").length > 10_240) {
        return error(res, 409, IAM_NS, "LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role");
      }
      try {
        parsePolicy(JSON.parse(doc), name);
      } catch (e) {
        return error(res, 400, IAM_NS, "MalformedPolicyDocument", (e as Error).message);
      }
      policies.set(name, doc);
      return send(res, 200, IAM_NS, "PutRolePolicy", "");
    }
    if (action === "DeleteRolePolicy") {
      policies.delete(name);
      return send(res, 200, IAM_NS, "DeleteRolePolicy", "");
    }
    return error(res, 400, IAM_NS, "InvalidAction", `unsupported action ${action}`);
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/federation") {
        const action = url.searchParams.get("Action") ?? "";
        const session = JSON.parse(url.searchParams.get("Session") ?? "{}") as {
          sessionId?: string;
          sessionToken?: string;
        };
        const s = sessions.get(session.sessionId ?? "");
        requests.push({
          service: "federation",
          action,
          params: Object.fromEntries(url.searchParams),
          accessKeyId: s?.accessKeyId ?? null,
        });
        if (action !== "getSigninToken" || !s || s.sessionToken !== session.sessionToken) {
          res.writeHead(400).end("bad federation request");
          return;
        }
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ SigninToken: `token-${randomBytes(12).toString("hex")}` }));
        return;
      }
      const service = url.pathname.startsWith("/iam") ? "iam" : "sts";
      const ns = service === "iam" ? IAM_NS : STS_NS;
      const params = Object.fromEntries(new URLSearchParams(body));
      const action = params.Action ?? "";
      const checked = verifySigV4(req, body, secretFor);
      requests.push({ service, action, params, accessKeyId: checked.ok ? checked.akid : null });
      if (!checked.ok) return error(res, 403, ns, checked.code, checked.message);
      const fail = failures.get(action);
      if (fail && fail.times > 0) {
        fail.times--;
        return error(res, fail.status, ns, fail.code, `injected ${fail.code}`);
      }
      const temp = sessions.get(checked.akid);
      if (temp) {
        const denied = authorize(temp, `${service}:${action}`);
        if (denied) return error(res, 403, ns, denied.includes("expired") ? "ExpiredToken" : "AccessDenied", denied);
      }
      return service === "iam"
        ? handleIam(res, action, params, checked.akid)
        : handleSts(res, action, params, checked.akid);
    })().catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    stsEndpoint: `${base}/sts`,
    iamEndpoint: `${base}/iam`,
    federationEndpoint: `${base}/federation`,
    requests,
    sessions,
    rolePolicies,
    failNext(action, code, status, times = 1) {
      failures.set(action, { code, status, times });
    },
    addRole(name, maxSessionS = 3600) {
      roles.set(name, maxSessionS);
      return `arn:aws:iam::${ACCOUNT}:role/${name}`;
    },
    takeTrail() {
      const taken = trail;
      trail = [];
      return taken;
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
