/** The review queue: tier-2 openings and ended grants waiting for a verdict, oldest deadline first. */
import { type FormEvent, useState } from "react";
import { api } from "../api.js";
import { time } from "../format.js";
import { Link } from "../router.js";
import { Chip, ErrorBox, Table, useData } from "../ui.js";

function OpeningReview({ id, done }: { id: string; done: () => void }) {
  const [outcome, setOutcome] = useState<"justified" | "justified_with_findings" | "unjustified">("justified");
  const [notes, setNotes] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.reviewOpening(id, { outcome, notes });
      done();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} className="inline-form">
      <label htmlFor={`o-${id}`}>Outcome</label>
      <select id={`o-${id}`} value={outcome} onChange={(e) => setOutcome(e.target.value as typeof outcome)}>
        <option value="justified">justified</option>
        <option value="justified_with_findings">justified with findings</option>
        <option value="unjustified">unjustified</option>
      </select>
      <label htmlFor={`n-${id}`}>Notes</label>
      <input id={`n-${id}`} required value={notes} onChange={(e) => setNotes(e.target.value)} />
      <button type="submit" className="primary">
        Record review
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

export function ReviewsPage() {
  const q = useData(() => api.reviews());
  return (
    <>
      <h1>Reviews</h1>
      <ErrorBox error={q.error} />
      {q.data && q.data.vaultOpenings.length > 0 ? (
        <section aria-labelledby="t2-title">
          <h2 id="t2-title">Tier-2 envelope openings</h2>
          <ul className="cards">
            {q.data.vaultOpenings.map((o) => (
              <li key={o.opening.id} className="card">
                <strong>{o.opening.envelope.name}</strong> opened {time(o.opening.openedAt)} by{" "}
                {o.opening.custodians.map((c) => c.name).join(" and ")} — {o.opening.incident}: {o.opening.reason}{" "}
                {o.overdue ? <Chip tone="bad">overdue</Chip> : null}
                {o.opening.integrity ? (
                  <p className="bad" role="alert">
                    This opening's record was edited outside Breakglass: {o.opening.integrity.message}
                  </p>
                ) : null}
                {o.canReview ? (
                  <OpeningReview id={o.opening.id} done={q.reload} />
                ) : (
                  <p className="hint">You may not review it: {o.why}</p>
                )}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      <section aria-labelledby="g-title">
        <h2 id="g-title">Grants ({q.data?.reviews.length ?? "…"})</h2>
        {q.data && q.data.reviews.length === 0 ? <p>No grant is waiting for a review.</p> : null}
        <Table head={["Grant", "Role", "Holder", "Incident", "Due", "You"]} stack>
          {(q.data?.reviews ?? []).map((r) => (
            <tr key={r.grant.id}>
              <td data-label="Grant">
                <Link to={`/grants/${r.grant.id}`} className="mono">
                  {r.grant.id}
                </Link>{" "}
                {r.emergency ? <Chip tone="bad">emergency</Chip> : null}
              </td>
              <td data-label="Role">{r.grant.role}</td>
              <td data-label="Holder">{r.grant.requester}</td>
              <td data-label="Incident">{r.grant.incident}</td>
              <td data-label="Due">
                {time(r.dueAt)} {r.overdue ? <Chip tone="bad">overdue</Chip> : null}
              </td>
              <td data-label="You">
                {r.canReview ? <Link to={`/grants/${r.grant.id}`}>review</Link> : <span className="hint">{r.why}</span>}
              </td>
            </tr>
          ))}
        </Table>
      </section>
    </>
  );
}
