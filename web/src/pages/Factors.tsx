/**
 * Your sign-in factors: the local second factors used for step-up and for the fallback login
 * while the IdP is down — security keys (WebAuthn; they need a browser, so they are enrolled
 * here), authenticator apps and one-time recovery codes. Enrolling or removing one pages security.
 * Shown on brokers with local factors, to people signed in through the IdP.
 */
import { type FormEvent, useState } from "react";
import { api, type TotpEnrollView } from "../api.js";
import { time } from "../format.js";
import { Chip, ErrorBox, Table, useData } from "../ui.js";
import { registerKey, webauthnAvailable } from "../webauthn.js";

const KIND: Readonly<Record<string, string>> = { webauthn: "security key", totp: "authenticator app" };

function AddKey({ done }: { done: () => void }) {
  const [label, setLabel] = useState("security key");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const started = await api.enrollKey(label.trim() || "security key");
      await api.confirmFactor(started.factorId, { webauthn: await registerKey(started.options) });
      done();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!webauthnAvailable()) {
    return (
      <p className="hint">
        This browser cannot use security keys here (WebAuthn needs https, or http on localhost, and a host name rather
        than an IP address).
      </p>
    );
  }
  return (
    <form onSubmit={add} className="inline-form">
      <label htmlFor="key-label">Name of the key</label>
      <input id="key-label" value={label} onChange={(e) => setLabel(e.target.value)} maxLength={100} />
      <button type="submit" className="primary" disabled={busy}>
        Add a security key
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

function AddApp({ done }: { done: () => void }) {
  const [started, setStarted] = useState<TotpEnrollView | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const start = async () => {
    setError(null);
    try {
      setStarted(await api.enrollTotp("authenticator app"));
    } catch (err) {
      setError(err);
    }
  };
  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    if (!started) return;
    setError(null);
    try {
      await api.confirmFactor(started.factorId, { code: code.trim() });
      setStarted(null);
      setCode("");
      done();
    } catch (err) {
      setError(err);
    }
  };
  if (!started) {
    return (
      <>
        <button type="button" onClick={start}>
          Add an authenticator app
        </button>
        <ErrorBox error={error} />
      </>
    );
  }
  return (
    <form onSubmit={confirm}>
      <p>Scan this with the app (or type the secret), then enter the code it shows. Shown once.</p>
      <img
        className="qr"
        src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(started.qrSvg)}`}
        alt="QR code of the authenticator secret"
      />
      <p className="mono">{started.secret}</p>
      <label htmlFor="app-code">Code from the app</label>
      <input
        id="app-code"
        autoComplete="one-time-code"
        value={code}
        required
        onChange={(e) => setCode(e.target.value)}
      />
      <button type="submit" className="primary">
        Confirm
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

export function FactorsPage() {
  const list = useData(() => api.factors());
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const remove = async (id: string) => {
    setError(null);
    try {
      await api.removeFactor(id);
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const newCodes = async () => {
    setError(null);
    try {
      setCodes((await api.recoveryCodes()).codes);
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const factors = (list.data?.factors ?? []).filter((f) => f.confirmed);
  return (
    <>
      <h1>Your sign-in factors</h1>
      <p className="hint">
        For step-up on roles that need a fresh second factor, and for the local fallback login while the IdP is down.
        Enrol them now, while the IdP works. Every change pages security.
      </p>
      <ErrorBox error={list.error ?? error} />
      <section aria-labelledby="factors-title">
        <h2 id="factors-title">Enrolled ({factors.length})</h2>
        {list.data && factors.length === 0 ? (
          <p>None yet: without one you cannot sign in while the IdP is down.</p>
        ) : null}
        {factors.length > 0 ? (
          <Table head={["Factor", "Kind", "Added", "Last used", "Action"]} stack>
            {factors.map((f) => (
              <tr key={f.id}>
                <td data-label="Factor">{f.label}</td>
                <td data-label="Kind">{KIND[f.kind] ?? f.kind}</td>
                <td data-label="Added">{time(f.createdAt)}</td>
                <td data-label="Last used">{time(f.lastUsedAt)}</td>
                <td data-label="Action">
                  <button type="button" className="plain" onClick={() => remove(f.id)}>
                    Remove {f.label}
                  </button>
                </td>
              </tr>
            ))}
          </Table>
        ) : null}
      </section>
      <section aria-labelledby="key-title">
        <h2 id="key-title">Security key</h2>
        <AddKey done={list.reload} />
      </section>
      <section aria-labelledby="app-title">
        <h2 id="app-title">Authenticator app</h2>
        <AddApp done={list.reload} />
      </section>
      <section aria-labelledby="codes-title">
        <h2 id="codes-title">Recovery codes</h2>
        <p>
          {list.data ? (
            <Chip tone={list.data.recoveryCodesLeft > 0 ? "ok" : "warn"}>{list.data.recoveryCodesLeft} left</Chip>
          ) : null}{" "}
          One-time codes for when the key and the phone are gone. Keep them offline.
        </p>
        <button type="button" onClick={newCodes}>
          New recovery codes
        </button>
        {codes ? (
          <>
            <p>Shown once; older unused codes no longer work:</p>
            <pre className="mono">{codes.join("\n")}</pre>
          </>
        ) : null}
      </section>
    </>
  );
}
