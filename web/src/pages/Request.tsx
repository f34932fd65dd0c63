/**
 * Request a recovery role: roles grouped by domain with what each allows; emergency activation
 * only after a deliberate, plainly worded confirmation.
 */
import { type FormEvent, useState } from "react";
import { api } from "../api.js";
import { duration } from "../format.js";
import { navigate } from "../router.js";
import { ErrorBox, useData } from "../ui.js";

export function RequestPage() {
  const roles = useData(() => api.roles());
  const [role, setRole] = useState("");
  const [justification, setJustification] = useState("");
  const [incident, setIncident] = useState("");
  const [length, setLength] = useState("");
  const [emergency, setEmergency] = useState(false);
  const [confirmed, setConfirmed] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const all = (roles.data?.domains ?? []).flatMap((d) => d.roles);
  const chosen = all.find((r) => r.id === role);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const g = await api.request({
        role,
        justification,
        incident,
        ...(length.trim() === "" ? {} : { duration: length.trim() }),
        ...(emergency ? { emergency: true } : {}),
      });
      navigate(`/grants/${g.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Request break-glass access</h1>
      <ErrorBox error={roles.error} />
      <form onSubmit={submit} className="card">
        <fieldset>
          <legend>Recovery role</legend>
          {(roles.data?.domains ?? []).map((d) => (
            <div key={d.name} className="domain">
              <h2>{d.name}</h2>
              {d.description ? <p className="hint">{d.description}</p> : null}
              {d.roles.map((r) => (
                <label key={r.id} className={`role ${r.canRequest ? "" : "disabled"}`}>
                  <input
                    type="radio"
                    name="role"
                    value={r.id}
                    disabled={!r.canRequest}
                    checked={role === r.id}
                    onChange={() => {
                      setRole(r.id);
                      setEmergency(false);
                      setConfirmed(false);
                    }}
                  />
                  <span>
                    <strong>{r.name}</strong> on {r.target} — {r.description}
                    <span className="hint">
                      {" "}
                      up to {duration(r.maxDurationS)}; approval: {r.approval}
                      {r.emergencyAllowed ? "; emergency allowed" : ""}
                      {r.canRequest ? "" : " (you may not request it)"}
                    </span>
                  </span>
                </label>
              ))}
            </div>
          ))}
        </fieldset>
        <label htmlFor="justification">Justification</label>
        <textarea
          id="justification"
          required
          minLength={10}
          value={justification}
          onChange={(e) => setJustification(e.target.value)}
        />
        <label htmlFor="incident">Incident id</label>
        <input id="incident" required value={incident} onChange={(e) => setIncident(e.target.value)} />
        <label htmlFor="duration">Duration (e.g. 30m, 1h30m; empty: the role's default)</label>
        <input id="duration" value={length} onChange={(e) => setLength(e.target.value)} />
        {chosen?.emergencyAllowed ? (
          <div className={`emergency ${emergency ? "armed" : ""}`}>
            <label className="check">
              <input
                type="checkbox"
                checked={emergency}
                onChange={(e) => {
                  setEmergency(e.target.checked);
                  setConfirmed(false);
                }}
              />
              Emergency: activate now, without approval
            </label>
            {emergency ? (
              <label className="check confirm">
                <input type="checkbox" checked={confirmed} onChange={(e) => setConfirmed(e.target.checked)} />I
                understand: this bypasses the approval rule, pages security as an emergency right now, and will be
                reviewed by the security team within 24 hours.
              </label>
            ) : null}
          </div>
        ) : null}
        <ErrorBox error={error} />
        <button
          type="submit"
          className={emergency ? "danger" : "primary"}
          disabled={busy || role === "" || (emergency && !confirmed)}
        >
          {emergency ? "Activate emergency access now" : "Request access"}
        </button>
      </form>
    </>
  );
}
