/**
 * A real OpenID provider for tests: panva's `oidc-provider` on loopback, with accounts and
 * groups set by the test, an interaction endpoint that signs in whoever the test names (the
 * login form is the IdP's business, not ours), RP-initiated logout, and a hook that rewrites the
 * token endpoint's answer on the wire — to hand the broker a tampered ID token, or a genuine one
 * signed with the IdP's key but issued to another client.
 *
 * Also a tiny cookie-keeping "browser" that follows redirects, so a test can walk the whole
 * authorization-code flow over HTTP.
 */
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

export interface TestAccount {
  readonly sub: string;
  readonly username: string;
  readonly email?: string;
  readonly name?: string;
  readonly groups: readonly string[];
}

export interface TestIdp {
  readonly issuer: string;
  readonly port: number;
  /** Who the next interaction signs in (the test's "user at the keyboard"). */
  loginAs(username: string): void;
  setAccount(account: TestAccount): void;
  /** The account is gone at the IdP (disabled, deleted): refreshes for it fail. */
  removeAccount(username: string): void;
  /** Rewrite the next token endpoint answers (JSON text in, JSON text out); null to stop. */
  tamperTokens(fn: ((body: Record<string, unknown>) => Record<string, unknown>) | null): void;
  /** An RS256 JWT signed with the IdP's own signing key. */
  signWithIdpKey(payload: Record<string, unknown>): string;
  stop(): Promise<void>;
  /** Start again on the same port (after `stop`), with the same keys and accounts. */
  restart(): Promise<void>;
}

export const IDP_CLIENT_ID = "breakglass";
export const IDP_CLIENT_SECRET = "breakglass-idp-client-secret-for-tests";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export async function startTestIdp(opts: {
  port: number;
  redirectUri: string;
  postLogoutUri: string;
}): Promise<TestIdp> {
  const issuer = `http://127.0.0.1:${opts.port}`;
  const accounts = new Map<string, TestAccount>();
  let nextLogin: string | null = null;
  let tamper: ((body: Record<string, unknown>) => Record<string, unknown>) | null = null;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = {
    ...(privateKey.export({ format: "jwk" }) as Record<string, unknown>),
    kid: "test-key",
    use: "sig",
    alg: "RS256",
  };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: IDP_CLIENT_ID,
        client_secret: IDP_CLIENT_SECRET,
        redirect_uris: [opts.redirectUri],
        post_logout_redirect_uris: [opts.postLogoutUri],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    // Refresh tokens without offline_access, so the broker can ask again about a session.
    issueRefreshToken: async () => true,
    conformIdTokenClaims: false,
    scopes: ["openid", "profile", "email", "groups"],
    claims: {
      openid: ["sub"],
      profile: ["name", "preferred_username"],
      email: ["email"],
      groups: ["groups"],
    },
    cookies: { keys: ["test-cookie-key-1"] },
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 3600, Interaction: 600, Session: 3600 },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        // Confirm logout without a form: the test's browser cannot click.
        logoutSource: async (ctx: { body: string }, form: string) => {
          const signOut = form.replace("</form>", '<input type="hidden" name="logout" value="yes"/></form>');
          ctx.body = `<!doctype html><html><body>${signOut}<script>document.forms[0].submit()</script></body></html>`;
        },
      },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, sub: string) => {
      const a = [...accounts.values()].find((x) => x.sub === sub);
      if (!a) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          preferred_username: a.username,
          ...(a.email ? { email: a.email } : {}),
          ...(a.name ? { name: a.name } : {}),
          groups: [...a.groups],
        }),
      };
    },
  } as unknown as ConstructorParameters<typeof Provider>[1]);

  const handler = provider.callback();
  const interaction = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === "login") {
      const account = nextLogin ? accounts.get(nextLogin) : undefined;
      if (!account) {
        res.writeHead(403).end("no test user to sign in");
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: account.sub } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    const grant = new provider.Grant({
      accountId: details.session?.accountId as string,
      clientId: details.params.client_id as string,
    });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  const serve = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url?.startsWith("/interaction/")) {
      interaction(req, res).catch((e: unknown) => res.writeHead(500).end(String(e)));
      return;
    }
    if (tamper && req.method === "POST" && req.url?.startsWith("/token")) {
      const fn = tamper;
      const end = res.end.bind(res) as (chunk?: unknown) => http.ServerResponse;
      const chunks: Buffer[] = [];
      res.write = ((c: unknown) => {
        chunks.push(Buffer.from(c as Buffer));
        return true;
      }) as typeof res.write;
      res.end = ((c?: unknown) => {
        if (c && typeof c !== "function") chunks.push(Buffer.from(c as Buffer));
        const text = Buffer.concat(chunks).toString("utf8");
        let out = text;
        try {
          out = JSON.stringify(fn(JSON.parse(text) as Record<string, unknown>));
        } catch {
          // not JSON (an error page): pass it on
        }
        res.setHeader("content-length", Buffer.byteLength(out));
        return end(out);
      }) as typeof res.end;
    }
    handler(req, res);
  };

  let server: http.Server | null = null;
  const listen = async () => {
    server = http.createServer(serve);
    await new Promise<void>((resolve) => server?.listen(opts.port, "127.0.0.1", () => resolve()));
  };
  await listen();

  const signingKey: KeyObject = privateKey;
  return {
    issuer,
    port: opts.port,
    loginAs(username) {
      nextLogin = username;
    },
    setAccount(a) {
      accounts.set(a.username, a);
    },
    removeAccount(username) {
      accounts.delete(username);
    },
    tamperTokens(fn) {
      tamper = fn;
    },
    signWithIdpKey(payload) {
      const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "test-key" }));
      const body = b64url(JSON.stringify(payload));
      const sig = sign("sha256", Buffer.from(`${head}.${body}`), signingKey);
      return `${head}.${body}.${b64url(sig)}`;
    },
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async restart() {
      if (!server) await listen();
    },
  };
}

/** Decode a JWT's payload (no checks: for building tampered copies). */
export function jwtPayload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
}

/** A cookie jar that follows redirects: enough of a browser to walk an OIDC login over HTTP. */
export class TestBrowser {
  readonly #jar = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | null {
    return this.#jar.get(origin)?.get(name) ?? null;
  }

  /** Fetch, following redirects (up to 20) and keeping cookies; the final response and URL. */
  async go(url: string, init: RequestInit = {}): Promise<{ res: Response; url: string; body: string }> {
    let current = new URL(url);
    let req: RequestInit = init;
    for (let hop = 0; hop < 20; hop++) {
      const jar = this.#jar.get(current.origin) ?? new Map<string, string>();
      const headers = new Headers(req.headers);
      if (jar.size > 0) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
      const res = await fetch(current, { ...req, headers, redirect: "manual" });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(";");
        const eq = pair?.indexOf("=") ?? -1;
        if (!pair || eq <= 0) continue;
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        const expired = /max-age=0/i.test(c) || /expires=Thu, 01 Jan 1970/i.test(c) || value === "";
        if (expired) jar.delete(name);
        else jar.set(name, value);
      }
      this.#jar.set(current.origin, jar);
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        current = new URL(location, current);
        req = {};
        continue;
      }
      const body = await res.text();
      // The IdP's self-submitting logout form: submit it as a browser would.
      const form = /<form([^>]*)>([\s\S]*?)<\/form>/i.exec(body);
      const action = form ? /action="([^"]+)"/.exec(form[1] ?? "")?.[1] : undefined;
      if (form && action && /document\.forms\[0\]\.submit\(\)/.test(body)) {
        const fields = new URLSearchParams();
        for (const m of (form[2] ?? "").matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) {
          fields.set(m[1] as string, m[2] as string);
        }
        current = new URL(action, current);
        req = { method: "POST", body: fields, headers: { "content-type": "application/x-www-form-urlencoded" } };
        continue;
      }
      return { res, url: current.href, body };
    }
    throw new Error(`too many redirects from ${url}`);
  }
}
