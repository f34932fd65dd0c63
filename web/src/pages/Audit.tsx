/** The audit log (admins): events with a type filter, and the chain's verification badge. */
import { useState } from "react";
import { api, type Me } from "../api.js";
import { time } from "../format.js";
import { Chip, ErrorBox, Table, useData } from "../ui.js";

export function AuditPage({ me }: { me: Me }) {
  const [from, setFrom] = useState(1);
  const [filter, setFilter] = useState("");
  const events = useData(() => api.audit(from), String(from));
  const verdict = useData(() => api.verify());
  if (!me.admin) return <p>The audit log is for members of an admin group.</p>;
  const list = (events.data?.events ?? []).filter(
    (e) => filter === "" || e.type.includes(filter) || e.actor.includes(filter),
  );
  return (
    <>
      <h1>
        Audit log{" "}
        {verdict.data ? (
          verdict.data.ok ? (
            <Chip tone="ok">chain verified</Chip>
          ) : (
            <Chip tone="bad">chain verification FAILED</Chip>
          )
        ) : null}
      </h1>
      {verdict.data && !verdict.data.ok ? <p className="bad">{verdict.data.summary}</p> : null}
      <ErrorBox error={events.error ?? verdict.error} />
      <label htmlFor="filter">Filter by type or actor</label>
      <input id="filter" value={filter} onChange={(e) => setFilter(e.target.value)} />
      <Table head={["#", "When", "Type", "Actor", "Grant"]} stack>
        {list.map((e) => (
          <tr key={e.seq}>
            <td data-label="#">{e.seq}</td>
            <td data-label="When">{time(e.at)}</td>
            <td data-label="Type">
              {e.type}
              {e.integrity ? (
                <>
                  {" "}
                  <Chip tone="bad">
                    {e.integrity.problem === "column_mismatch" ? "edited index" : "does not verify"}
                  </Chip>{" "}
                  <span className="hint">{e.integrity.message}</span>
                </>
              ) : null}
            </td>
            <td data-label="Actor">{e.actor}</td>
            <td data-label="Grant" className="mono">
              {e.grantId ?? "—"}
            </td>
          </tr>
        ))}
      </Table>
      <p>
        <button type="button" disabled={from === 1} onClick={() => setFrom(Math.max(1, from - 200))}>
          Earlier
        </button>{" "}
        <button type="button" disabled={(events.data?.events.length ?? 0) < 200} onClick={() => setFrom(from + 200)}>
          Later
        </button>
      </p>
    </>
  );
}
