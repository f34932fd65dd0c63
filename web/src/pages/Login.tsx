/**
 * Sign in: through the IdP (a cookie session); while the IdP is down, by the local fallback (user
 * name and a local factor: a security key, an authenticator code or a recovery code; it pages
 * security); or with an API token (any broker, and the only way on one without an IdP, like the
 * demo).
 */
import { type FormEvent, useState } from "react";
import { api, type FactorProof, type IdpHealth, tokenLogin } from "../api.js";
import { ErrorBox } from "../ui.js";
import { signWithKey, webauthnAvailable } from "../webauthn.js";

function FallbackLogin({ onSignedIn }: { onSignedIn: () => void }) {
  const [user, setUser] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const signIn = async (proof: () => Promise<FactorProof>) => {
    setBusy(true);
    setError(null);
    try {
      await api.fallbackLogin(user.trim(), await proof());
      onSignedIn();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="emergency armed"
      aria-labelledby="fallback-title"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        void signIn(async () => ({ code: code.trim() }));
      }}
    >
      <h2 id="fallback-title">The IdP is down: local fallback login</h2>
      <p className="hint">
        With a factor you enrolled while it was up. This pages security; you may request only the roles allowed from a
        fallback login, and each such grant is reviewed.
      </p>
      <label htmlFor="fallback-user">User name</label>
      <input
        id="fallback-user"
        autoComplete="username"
        value={user}
        required
        onChange={(e) => setUser(e.target.value)}
      />
      {webauthnAvailable() ? (
        <button
          type="button"
          className="primary"
          disabled={busy || user.trim() === ""}
          onClick={() =>
            signIn(async () => ({ webauthn: await signWithKey(await api.webauthnChallenge(user.trim())) }))
          }
        >
          Sign in with a security key
        </button>
      ) : null}
      <label htmlFor="fallback-code">Or a code from your authenticator app (or a recovery code)</label>
      <input id="fallback-code" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} />
      <button type="submit" disabled={busy || code.trim() === ""}>
        Sign in with the code
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

export function Login({ idp, onSignedIn }: { idp: IdpHealth | null; onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const returnTo = encodeURIComponent(window.location.pathname + window.location.search);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    tokenLogin.set(token.trim());
    try {
      await api.me();
      onSignedIn();
    } catch (err) {
      tokenLogin.clear();
      setError(err);
    }
  };
  return (
    <section className="card narrow" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      {idp?.configured ? (
        <p>
          {/* While it is down, the way in is the fallback below: the IdP's button is not the first thing offered. */}
          <a className={`button ${idp.reachable ? "primary" : ""}`} href={`/auth/login?return_to=${returnTo}`}>
            {idp.reachable ? "Sign in with your identity provider" : "Try the identity provider anyway"}
          </a>
        </p>
      ) : null}
      {idp?.fallbackOpen ? <FallbackLogin onSignedIn={onSignedIn} /> : null}
      <form onSubmit={submit}>
        <label htmlFor="token">{idp?.configured ? "Or with an API token" : "API token"}</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          required
        />
        <p className="hint">
          Kept in this tab only. <code>breakglass demo</code> prints one per demo user (ALICE_TOKEN, BOB_TOKEN, …);
          otherwise <code>breakglass token create</code>.
        </p>
        <button type="submit">Sign in with token</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
