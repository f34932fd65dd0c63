/** Drills: each configured rehearsal, its last result, its history with timed steps; run one now (admins). */
import { useState } from "react";
import { api, type DrillRunView, type Me } from "../api.js";
import { time } from "../format.js";
import { Chip, ErrorBox, useData } from "../ui.js";

function Runs({ name }: { name: string }) {
  const runs = useData(() => api.drillRuns(name), name);
  if (runs.error) return <ErrorBox error={runs.error} />;
  if (!runs.data) return <p aria-busy="true">Loading…</p>;
  return (
    <ol className="timeline">
      {runs.data.runs.map((r) => (
        <li key={r.id}>
          <Result run={r} /> {time(r.startedAt)} by {r.startedBy}
          {r.timeToAccessMs === null ? "" : ` — access in ${(r.timeToAccessMs / 1000).toFixed(1)} s`}
          {r.integrity ? (
            <>
              {" "}
              <Chip tone="bad">record edited</Chip> <span className="hint">{r.integrity.message}</span>
            </>
          ) : r.sealed ? null : (
            <span className="hint"> (steps not in the audit log until the run ends)</span>
          )}
          <ul>
            {r.steps.map((s) => (
              <li key={s.name} className={s.ok ? "" : "bad"}>
                {s.ok ? "✓" : "✗"} {s.name} ({s.ms} ms){s.detail ? ` — ${s.detail}` : ""}
              </li>
            ))}
          </ul>
        </li>
      ))}
    </ol>
  );
}

function Result({ run }: { run: DrillRunView }) {
  return <Chip tone={run.result === "passed" ? "ok" : run.result === "failed" ? "bad" : "info"}>{run.result}</Chip>;
}

export function DrillsPage({ me }: { me: Me }) {
  const list = useData(() => api.drills());
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const run = async (name: string) => {
    setError(null);
    try {
      await api.runDrill(name);
      setOpen(name);
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <h1>Drills</h1>
      <ErrorBox error={list.error ?? error} />
      {list.data && list.data.drills.length === 0 ? <p>No drill is configured (drills: in breakglass.yaml).</p> : null}
      <ul className="cards">
        {(list.data?.drills ?? []).map((d) => (
          <li key={d.name} className="card">
            <strong>{d.name}</strong> — {d.scenario} of {d.role}, every {d.every}.{" "}
            {d.lastRun ? (
              <>
                Last: <Result run={d.lastRun} /> {time(d.lastRun.startedAt)}
                {d.lastRun.integrity ? <Chip tone="bad">record edited</Chip> : null}
              </>
            ) : (
              <Chip tone="bad">never run</Chip>
            )}
            <div>
              <button type="button" onClick={() => setOpen(open === d.name ? null : d.name)}>
                {open === d.name ? "Hide history" : "History"}
              </button>
              {me.admin ? (
                <button type="button" onClick={() => run(d.name)}>
                  Run now
                </button>
              ) : null}
            </div>
            {open === d.name ? <Runs name={d.name} /> : null}
          </li>
        ))}
      </ul>
    </>
  );
}
