/**
 * The step-up dialog: a role with `step_up` needs a fresh second factor at request, approval and
 * activation. The action that needed it asks here, verifies the code (authenticator app or a
 * recovery code) and runs again.
 */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { setStepUpPrompt } from "./api.js";

export function StepUpDialog() {
  const [ask, setAsk] = useState<{ why: string; done: (code: string | null) => void } | null>(null);
  const [code, setCode] = useState("");
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    setStepUpPrompt((why) => new Promise((done) => setAsk({ why, done })));
    return () => setStepUpPrompt(null);
  }, []);
  useEffect(() => {
    if (ask) input.current?.focus();
  }, [ask]);
  if (!ask) return null;
  const finish = (value: string | null) => {
    ask.done(value);
    setAsk(null);
    setCode("");
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    finish(code.trim());
  };
  return (
    <div className="overlay">
      <form className="card dialog" role="dialog" aria-modal="true" aria-labelledby="stepup-title" onSubmit={submit}>
        <h2 id="stepup-title">Confirm it is you</h2>
        <p>{ask.why}</p>
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
            if (e.key === "Escape") finish(null);
          }}
        />
        <button type="submit" className="primary">
          Verify and continue
        </button>
        <button type="button" className="plain" onClick={() => finish(null)}>
          Cancel
        </button>
      </form>
    </div>
  );
}
