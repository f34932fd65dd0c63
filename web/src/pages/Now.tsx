/**
 * Who holds what right now: every active grant with a live countdown and its alarm state (red if
 * no security channel has it), requests waiting for approval, and the caller's own grants.
 */
import { useEffect, useState } from "react";
import { api, type GrantView, type Me } from "../api.js";
import { remaining } from "../format.js";
import { Link } from "../router.js";
import { Chip, ErrorBox, Table, useCountdown, useData } from "../ui.js";

function Countdown({ seconds }: { seconds: number | null }) {
  const left = useCountdown(seconds);
  return <span className="countdown">{left === null ? "—" : remaining(left)}</span>;
}

function GrantRow({ g }: { g: GrantView }) {
  return (
    <tr>
      <td data-label="Grant">
        <Link to={`/grants/${g.id}`} className="mono">
          {g.id}
        </Link>
        {g.emergency ? (
          <>
            {" "}
            <Chip tone="bad">emergency</Chip>
          </>
        ) : null}
        {g.drill ? (
          <>
            {" "}
            <Chip tone="info">drill</Chip>
          </>
        ) : null}
      </td>
      <td data-label="Holder">{g.requester}</td>
      <td data-label="Role">
        {g.role}
        <div className="hint">on {g.target}</div>
      </td>
      <td data-label="Incident">{g.incident}</td>
      <td data-label="Left">
        <Countdown seconds={g.remainingS} />
      </td>
      <td data-label="Alarm">{g.unalarmed ? <Chip tone="bad">UNALARMED</Chip> : <Chip tone="ok">alarmed</Chip>}</td>
    </tr>
  );
}

export function NowPage({ me }: { me: Me }) {
  const active = useData(() => api.allGrants("state=active"));
  const waiting = useData(() => api.allGrants("state=requested,approved"));
  useEffect(() => {
    const t = setInterval(() => {
      active.reload();
      waiting.reload();
    }, 15_000);
    return () => clearInterval(t);
  }, [active.reload, waiting.reload]);
  const [error, setError] = useState<unknown>(null);
  const mine = (active.data?.grants ?? []).filter((g) => g.requester === me.user);
  const toApprove = (waiting.data?.grants ?? []).filter((g) => g.can?.approve === true);
  return (
    <>
      <h1>Now</h1>
      <ErrorBox error={active.error ?? waiting.error ?? error} />
      <section aria-labelledby="active-title">
        <h2 id="active-title">
          Active break-glass grants ({active.data?.grants.length ?? "…"}
          {active.data?.next ? `+; the newest ${active.data.grants.length} shown` : ""})
        </h2>
        {active.data && active.data.grants.length === 0 ? (
          <p>Nobody holds break-glass access right now.</p>
        ) : (
          <Table head={["Grant", "Holder", "Role", "Incident", "Left", "Alarm"]} stack>
            {(active.data?.grants ?? []).map((g) => (
              <GrantRow key={g.id} g={g} />
            ))}
          </Table>
        )}
      </section>
      <section aria-labelledby="approve-title">
        <h2 id="approve-title">Waiting for your approval ({toApprove.length})</h2>
        {toApprove.length === 0 ? <p>No request is waiting for your approval.</p> : null}
        <ul className="cards">
          {toApprove.map((g) => (
            <li key={g.id} className="card">
              <Link to={`/grants/${g.id}`}>
                {g.requester} asks for {g.role}
              </Link>
              <div className="hint">
                {g.incident} · {g.approvals.length} approval(s) so far · rule {g.approvalRule ?? "?"}
              </div>
              <p>{g.justification}</p>
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="mine-title">
        <h2 id="mine-title">My active grants ({mine.length})</h2>
        <ul className="cards">
          {mine.map((g) => (
            <li key={g.id} className="card">
              <Link to={`/grants/${g.id}`}>{g.role}</Link> — <Countdown seconds={g.remainingS} /> left
              <div>
                {g.can?.release ? (
                  <button
                    type="button"
                    onClick={() =>
                      api.act(g.id, "release").then(
                        () => active.reload(),
                        (e: unknown) => setError(e),
                      )
                    }
                  >
                    Release now
                  </button>
                ) : null}
                {g.can?.extend ? (
                  <button
                    type="button"
                    className="plain"
                    onClick={() =>
                      api.act(g.id, "extend", { by: "15m", reason: "more time needed (from the console)" }).then(
                        () => active.reload(),
                        (e: unknown) => setError(e),
                      )
                    }
                  >
                    Extend 15 min
                  </button>
                ) : null}
              </div>
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}
