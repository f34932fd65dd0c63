/** Sign in: through the IdP (a cookie session), or with an API token (a broker without an IdP). */
import { type FormEvent, useState } from "react";
import { api, type IdpHealth, tokenLogin } from "../api.js";
import { ErrorBox } from "../ui.js";

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
          <a className="button primary" href={`/auth/login?return_to=${returnTo}`}>
            Sign in with your identity provider
          </a>
        </p>
      ) : null}
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
        <p className="hint">Kept in this tab only; `breakglass demo` prints one per demo user.</p>
        <button type="submit">Sign in with token</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
