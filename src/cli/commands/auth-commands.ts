/**
 * Signing in from the terminal: `login` (through the IdP in a browser, or — with the IdP down —
 * by local fallback with an authenticator code), `logout`, `step-up`, local factors (`factors
 * …`) and the IdP's state (`idp …`). The session is saved for the other commands (see
 * session-file.ts); codes and tokens are read without echo.
 */
import { spawn } from "node:child_process";
import { renderUnicodeCompact } from "uqr";
import { createApiClient, DEFAULT_BROKER_URL } from "../api-client.js";
import { type CliIo, UsageError } from "../cli-io.js";
import type { Command, OptionSpec } from "../command.js";
import { EXIT } from "../exit-codes.js";
import { cell } from "../format.js";
import { removeSession, writeSession } from "../session-file.js";
import { API_ENV_NOTES, clientFrom } from "./grant-commands.js";

const JSON_OPTION: OptionSpec = { type: "boolean", description: "Print the API's JSON instead of text" };
const printJson = (io: CliIo, value: unknown) => io.out(JSON.stringify(value, null, 2));
const brokerUrl = (io: CliIo, flag: string | undefined) =>
  (flag ?? io.env.BREAKGLASS_URL?.trim() ?? DEFAULT_BROKER_URL) || DEFAULT_BROKER_URL;

async function codeFrom(io: CliIo, flag: string | undefined, what = "Authenticator code (or a recovery code): ") {
  const code = flag ?? (await io.ask(what, true));
  if (!code) throw new UsageError("no code given");
  return code;
}

/** Try the desktop's browser (xdg-open, open); silent when there is none (a server, SSH). */
function openBrowser(io: CliIo, url: string): void {
  const opener = process.platform === "darwin" ? "open" : io.env.DISPLAY || io.env.WAYLAND_DISPLAY ? "xdg-open" : null;
  if (!opener) return;
  try {
    const child = spawn(opener, [url], { stdio: "ignore", detached: true });
    child.on("error", () => {});
    child.unref();
  } catch {
    // no browser: the printed URL is enough
  }
}

const loginCommand: Command = {
  name: "login",
  summary: "Sign in: through the IdP in a browser, or with --fallback and a local factor when the IdP is down",
  description:
    "Without --fallback: open the printed URL in a browser, sign in at your IdP, and paste the session token the page shows. With --fallback (only while the IdP is unreachable or declared down): your user name and an authenticator or recovery code; security is paged and your grants are flagged for review. The session is saved for the other commands.",
  args: [],
  options: {
    url: { type: "string", value: "URL", description: `The broker (default BREAKGLASS_URL or ${DEFAULT_BROKER_URL})` },
    fallback: { type: "boolean", description: "Local fallback login (IdP down)" },
    user: { type: "string", value: "NAME", description: "Your user name (with --fallback)" },
    code: { type: "string", value: "CODE", description: "Authenticator or recovery code (else asked, not echoed)" },
    "no-browser": { type: "boolean", description: "Do not try to open a browser (print the URL only)" },
  },
  notes: [
    "Examples:",
    "  breakglass login --url https://breakglass.example.com",
    "  breakglass login --fallback --user alice",
  ],
  async run(input, io) {
    const url = brokerUrl(io, input.string("url"));
    const anonymous = createApiClient({ url, token: null });
    if (input.flag("fallback")) {
      const user = input.requireString("user");
      const r = await anonymous.fallbackLogin(user, await codeFrom(io, input.string("code")));
      const file = writeSession(io, { url, token: r.token, user: r.user, method: r.method, expiresAt: r.expiresAt });
      io.err(
        `Signed in as ${r.user} via LOCAL FALLBACK (the IdP is down). Security has been paged; you may only request roles that allow fallback, and those grants are reviewed. Session saved to ${file}, ends ${r.expiresAt}.`,
      );
      return EXIT.OK;
    }
    const health = await anonymous.idp();
    if (!health.configured) {
      throw new UsageError("this broker has no IdP login (auth.oidc); use an API token in BREAKGLASS_TOKEN");
    }
    if (!health.reachable) {
      io.err("The identity provider is unreachable. If this is an emergency: breakglass login --fallback --user NAME");
    }
    const page = `${url.replace(/\/+$/, "")}/auth/cli`;
    io.err(`Open this URL in a browser and sign in:\n\n  ${page}\n`);
    if (!input.flag("no-browser")) openBrowser(io, page);
    const token = await io.ask("Paste the session token shown in the browser: ", true);
    if (!token) throw new UsageError("no token pasted");
    const session = await createApiClient({ url, token }).session();
    const file = writeSession(io, {
      url,
      token,
      user: session.user,
      method: session.method,
      expiresAt: session.expiresAt ?? new Date(Date.now() + 3600_000).toISOString(),
    });
    io.err(`Signed in as ${session.user}. Session saved to ${file}, ends ${session.expiresAt}.`);
    return EXIT.OK;
  },
};

const logoutCommand: Command = {
  name: "logout",
  summary: "End the saved session (at the broker too) and forget it",
  args: [],
  options: {},
  async run(_input, io) {
    try {
      await clientFrom(io).logout();
    } finally {
      removeSession(io);
    }
    io.err("Signed out.");
    return EXIT.OK;
  },
};

const stepUpCommand: Command = {
  name: "step-up",
  summary: "Verify your second factor now, for roles that require a fresh one (step_up)",
  args: [],
  options: { code: { type: "string", value: "CODE", description: "The code (else asked, not echoed)" } },
  notes: API_ENV_NOTES,
  async run(input, io) {
    const r = await clientFrom(io).stepUp(await codeFrom(io, input.string("code")));
    io.err(`Second factor verified at ${r.factorAt}.`);
    return EXIT.OK;
  },
};

const factorCommands: Command[] = [
  {
    name: "factors list",
    summary: "Your local factors (authenticator apps) and how many recovery codes are left",
    args: [],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const list = await clientFrom(io).factors();
      if (input.flag("json")) printJson(io, list);
      else {
        for (const f of list.factors) {
          io.out(
            `${f.id}  ${f.kind}  ${f.label}  ${f.confirmed ? "confirmed" : "NOT CONFIRMED"}  added ${f.createdAt}`,
          );
        }
        io.out(`recovery codes left: ${list.recoveryCodesLeft}`);
      }
      return EXIT.OK;
    },
  },
  {
    name: "factors add-totp",
    summary: "Enrol an authenticator app (QR code in the terminal; confirmed by its first code)",
    description:
      "Enrol while the IdP is healthy: this factor is what lets you in (by local fallback) when it is not, and what step-up asks for.",
    args: [],
    options: {
      label: { type: "string", value: "TEXT", description: "A name for it (e.g. `work phone`)" },
      code: { type: "string", value: "CODE", description: "The app's first code (else asked)" },
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const client = clientFrom(io);
      const e = await client.enrollTotp(input.string("label") ?? "authenticator app");
      io.err(`Scan this with your authenticator app (or enter the secret ${e.secret}):\n`);
      io.err(renderUnicodeCompact(e.uri));
      const f = await client.confirmTotp(e.factorId, await codeFrom(io, input.string("code"), "Code from the app: "));
      io.err(
        `Enrolled ${f.id} (${f.label}). Security has been told. Also make recovery codes: breakglass factors recovery-codes`,
      );
      return EXIT.OK;
    },
  },
  {
    name: "factors recovery-codes",
    summary: "Make 10 one-time recovery codes (older unused ones stop working); printed once",
    args: [],
    options: {},
    notes: API_ENV_NOTES,
    async run(_input, io) {
      const r = await clientFrom(io).recoveryCodes();
      io.err("Keep these somewhere safe and offline; each works once:");
      for (const c of r.codes) io.out(c);
      return EXIT.OK;
    },
  },
  {
    name: "factors remove",
    summary: "Remove one of your factors (security is told)",
    args: [{ name: "ID", required: true, description: "Factor id (f_…), from `breakglass factors list`" }],
    options: {},
    notes: API_ENV_NOTES,
    async run(input, io) {
      await clientFrom(io).removeFactor(input.arg(0));
      io.err(`Removed ${input.arg(0)}.`);
      return EXIT.OK;
    },
  },
];

const idpCommands: Command[] = [
  {
    name: "idp status",
    summary: "Is the IdP reachable, and is the local fallback login open?",
    args: [],
    options: {
      url: { type: "string", value: "URL", description: "The broker" },
      json: JSON_OPTION,
    },
    async run(input, io) {
      const h = await createApiClient({ url: brokerUrl(io, input.string("url")), token: null }).idp();
      if (input.flag("json")) printJson(io, h);
      else if (!h.configured) io.out("no IdP configured (API tokens only)");
      else {
        io.out(
          cell(
            `IdP ${h.reachable ? "reachable" : "UNREACHABLE"}${h.declaredDown ? ` — declared down by ${h.declaredDown.by} at ${h.declaredDown.at}: ${h.declaredDown.reason}` : ""}; last check ${h.lastCheckAt ?? "never"}; fallback login ${h.fallbackOpen ? "OPEN" : "closed"}`,
          ),
        );
      }
      return EXIT.OK;
    },
  },
  {
    name: "idp declare",
    summary: "Declare the IdP down (opens the fallback login) or up again — admins; pages security",
    args: [],
    options: {
      down: { type: "boolean", description: "Declare it down" },
      up: { type: "boolean", description: "Declare it up again" },
      reason: { type: "string", value: "TEXT", required: true, description: "Why (recorded and alarmed)" },
    },
    notes: API_ENV_NOTES,
    async run(input, io) {
      if (input.flag("down") === input.flag("up"))
        throw new UsageError("give exactly one of --down and --up", "idp declare");
      const h = await clientFrom(io).declareIdp(input.flag("down"), input.requireString("reason"));
      io.err(
        `IdP declared ${input.flag("down") ? "down" : "up"}; fallback login ${h.fallbackOpen ? "OPEN" : "closed"}.`,
      );
      return EXIT.OK;
    },
  },
];

const tokenCommands: Command[] = [
  {
    name: "token list",
    summary: "Your API tokens (admins: everyone's) from a running broker, without secrets",
    args: [],
    options: { json: JSON_OPTION },
    notes: API_ENV_NOTES,
    async run(input, io) {
      const list = await clientFrom(io).listTokens();
      if (input.flag("json")) printJson(io, list);
      else {
        for (const t of list.tokens) {
          const state = t.revokedAt ? `revoked ${t.revokedAt}` : t.expiresAt ? `expires ${t.expiresAt}` : "no expiry";
          io.out(cell(`${t.id}  ${t.user}  [${t.scopes.join(",")}]  ${state}  ${t.description}`));
        }
      }
      return EXIT.OK;
    },
  },
  {
    name: "token revoke",
    summary: "Revoke an API token now (your own; admins: any)",
    args: [{ name: "ID", required: true, description: "Token id (t_…)" }],
    options: {},
    notes: API_ENV_NOTES,
    async run(input, io) {
      const t = await clientFrom(io).revokeToken(input.arg(0));
      io.err(`Revoked ${t.id} (${t.user}) at ${t.revokedAt}.`);
      return EXIT.OK;
    },
  },
];

export const authCommands: readonly Command[] = [
  loginCommand,
  logoutCommand,
  stepUpCommand,
  ...factorCommands,
  ...idpCommands,
  ...tokenCommands,
];
