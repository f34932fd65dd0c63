/**
 * The step-up dialog: a role with `step_up` needs a fresh second factor at request, approval and
 * activation. The action that needed it asks here; the person verifies a code (authenticator app
 * or recovery code) or touches a security key, the dialog stays open with the broker's answer
 * until one is accepted (or they cancel), and the action runs again.
 */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { api, setStepUpPrompt } from "./api.js";
import { ErrorBox } from "./ui.js";
import { signWithKey, webauthnAvailable } from "./webauthn.js";

export function StepUpDialog({ user, enabled }: { user: string; enabled: boolean }) {
  const [ask, setAsk] = useState<{ why: string; done: (ok: boolean) => void } | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (!enabled) return;
    setStepUpPrompt((why) => new Promise((done) => setAsk({ why, done })));
    return () => setStepUpPrompt(null);
  }, [enabled]);
  useEffect(() => {
    if (ask) input.current?.focus();
  }, [ask]);
  if (!ask) return null;
  const finish = (ok: boolean) => {
    ask.done(ok);
    setAsk(null);
    setCode("");
    setError(null);
  };
  const verify = async (proof: () => Promise<Parameters<typeof api.stepUp>[0]>) => {
    setBusy(true);
    setError(null);
    try {
      await api.stepUp(await proof());
      finish(true);
    } catch (e) {
      setError(e);
      setCode("");
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void verify(async () => ({ code: code.trim() }));
  };
  return (
    <div className="overlay">
      <form className="card dialog" role="dialog" aria-modal="true" aria-labelledby="stepup-title" onSubmit={submit}>
        <h2 id="stepup-title">Confirm it is you</h2>
        <p>{ask.why}</p>
        {webauthnAvailable() ? (
          <>
            <button
              type="button"
              className="primary"
              disabled={busy}
              onClick={() => verify(async () => ({ webauthn: await signWithKey(await api.webauthnChallenge(user)) }))}
            >
              Use a security key
            </button>
            <p className="hint">Or:</p>
          </>
        ) : null}
        <label htmlFor="stepup-code">Code from your authenticator app (or a recovery code)</label>
        <input
          id="stepup-code"
          ref={input}
          autoComplete="one-time-code"
          inputMode="text"
          value={code}
          required
          onChange={(e) => setCode(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Escape") finish(false);
          }}
        />
        <ErrorBox error={error} />
        <button type="submit" className={webauthnAvailable() ? "" : "primary"} disabled={busy}>
          Verify and continue
        </button>
        <button type="button" className="plain" onClick={() => finish(false)}>
          Cancel
        </button>
      </form>
    </div>
  );
}
