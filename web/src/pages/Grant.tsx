/**
 * One grant — the page alarm links open. Its context and state (how it ended, once it did), the
 * actions the caller can take now — only those the API says the caller may (`can`: approve/deny
 * from the alarm's deep link, cancel, activate, release, extend, revoke, review) — connection
 * details for the holder while active, and the timeline: every audit event, alarms and their
 * delivery, what the session recorded.
 */
import { type FormEvent, useEffect, useState } from "react";
import { api, type GrantPermissions, type GrantView, type Me, type StoryView } from "../api.js";
import { duration, time } from "../format.js";
import { Chip, ErrorBox, Table, useCountdown, useData } from "../ui.js";
import { RecordingPanel } from "./Recording.js";

const OUTCOMES = ["justified", "justified_with_findings", "unjustified"] as const;

function Action({
  label,
  tone = "primary",
  field,
  run,
}: {
  label: string;
  tone?: "primary" | "danger" | "plain";
  /** A text the action needs (a reason, a comment): asked for before it runs. */
  field?: { label: string; required: boolean };
  run: (text: string) => Promise<unknown>;
}) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async (e?: FormEvent) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await run(text);
      setOpen(false);
      setText("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const id = `f-${label.toLowerCase().replace(/\W+/g, "-")}`;
  if (field && open) {
    return (
      <form onSubmit={go} className="inline-form">
        <label htmlFor={id}>{field.label}</label>
        <input id={id} value={text} required={field.required} onChange={(e) => setText(e.target.value)} />
        <button type="submit" className={tone} disabled={busy}>
          {label}
        </button>
        <button type="button" className="plain" onClick={() => setOpen(false)}>
          Cancel
        </button>
        <ErrorBox error={error} />
      </form>
    );
  }
  return (
    <span>
      <button type="button" className={tone} disabled={busy} onClick={() => (field ? setOpen(true) : go())}>
        {label}
      </button>
      <ErrorBox error={error} />
    </span>
  );
}

const EXTEND_BY = ["15m", "30m", "1h"] as const;

function Extend({ run }: { run: (by: string, reason: string) => Promise<unknown> }) {
  const [open, setOpen] = useState(false);
  const [by, setBy] = useState<string>(EXTEND_BY[0]);
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>(null);
  if (!open) {
    return (
      <button type="button" className="plain" onClick={() => setOpen(true)}>
        Extend
      </button>
    );
  }
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await run(by, reason);
      setOpen(false);
      setReason("");
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} className="inline-form">
      <label htmlFor="extend-by">Extend by</label>
      <select id="extend-by" value={by} onChange={(e) => setBy(e.target.value)}>
        {EXTEND_BY.map((b) => (
          <option key={b} value={b}>
            {b}
          </option>
        ))}
      </select>
      <label htmlFor="extend-why">Why</label>
      <input id="extend-why" required value={reason} onChange={(e) => setReason(e.target.value)} />
      <button type="submit" className="primary">
        Extend
      </button>
      <button type="button" className="plain" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

/** The state as a person reads it: `ended (revoked)`, not just `ended`. */
export function stateLabel(g: Pick<GrantView, "state" | "endReason">): string {
  return (g.state === "ended" || g.state === "reviewed") && g.endReason ? `${g.state} (${g.endReason})` : g.state;
}

const NOTHING: GrantPermissions = {
  approve: false,
  deny: false,
  cancel: false,
  activate: false,
  revoke: false,
  release: false,
  extend: false,
  review: false,
  ack: false,
  resolve: false,
  credential: false,
  recording: false,
};

function Review({ id, done }: { id: string; done: () => void }) {
  const [outcome, setOutcome] = useState<(typeof OUTCOMES)[number]>("justified");
  const [notes, setNotes] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.act(id, "review", { outcome, notes });
      done();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={submit} className="card" aria-labelledby="review-title">
      <h2 id="review-title">Review</h2>
      <fieldset>
        <legend>Outcome</legend>
        {OUTCOMES.map((o) => (
          <label key={o} className="check">
            <input type="radio" name="outcome" value={o} checked={outcome === o} onChange={() => setOutcome(o)} />
            {o.replaceAll("_", " ")}
          </label>
        ))}
      </fieldset>
      <label htmlFor="notes">Notes: what was done, findings</label>
      <textarea id="notes" required value={notes} onChange={(e) => setNotes(e.target.value)} />
      <ErrorBox error={error} />
      <button type="submit" className="primary">
        Record review
      </button>
    </form>
  );
}

export function GrantPage({ id, me, storyAllowed }: { id: string; me: Me; storyAllowed: boolean }) {
  // The grant as GET /grants/{id} gives it (with what the caller may do), and its story (not for
  // a login via local fallback, which only uses its grants).
  const story = useData(
    () => Promise.all([api.grant(id), storyAllowed ? api.story(id) : Promise.resolve(null as StoryView | null)]),
    id,
  );
  const [credential, setCredential] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const g = story.data?.[0] ?? null;
  const left = useCountdown(g?.remainingS ?? null);
  useEffect(() => {
    if (g?.state !== "active" && g?.state !== "requested" && g?.state !== "approved") return;
    const t = setInterval(story.reload, 10_000);
    return () => clearInterval(t);
  }, [g?.state, story.reload]);
  if (story.error) return <ErrorBox error={story.error} />;
  if (!g || !story.data) return <p aria-busy="true">Loading…</p>;
  const s = story.data[1];
  const act =
    (action: string, body: Record<string, unknown> = {}) =>
    async () => {
      await api.act(g.id, action, body);
      story.reload();
    };
  const mine = g.requester === me.user;
  const can = g.can ?? NOTHING;
  const approvedByMe = g.approvals.some((a) => a.approver === me.user);
  const showCredential = async () => {
    try {
      const r = await fetchCredential(g.id);
      setCredential(r);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <h1>
        Grant <span className="mono">{g.id}</span>
      </h1>
      <div className="card">
        <p>
          <strong>{g.requester}</strong> — {g.role} on {g.target}, incident <strong>{g.incident}</strong>
        </p>
        <p className="state">
          State: <Chip tone={g.state === "active" ? "warn" : "info"}>{stateLabel(g)}</Chip>{" "}
          {g.emergency ? <Chip tone="bad">EMERGENCY (approval bypassed)</Chip> : null}{" "}
          {g.viaFallback ? <Chip tone="bad">login via local fallback</Chip> : null}{" "}
          {g.drill ? <Chip tone="info">DRILL (a rehearsal, never reviewed)</Chip> : null}{" "}
          {g.state === "active" && left !== null ? (
            <span className="countdown">
              {Math.floor(left / 60)}:{String(left % 60).padStart(2, "0")} left
            </span>
          ) : null}
        </p>
        <p>Justification: {g.justification}</p>
        <p className="hint">
          Requested {time(g.requestedAt)} · approval rule {g.approvalRule ?? "—"} · approvals:{" "}
          {g.approvals.length === 0 ? "none" : g.approvals.map((a) => a.approver).join(", ")} · length{" "}
          {duration(g.durationS)} · access at the target: {g.access.state}
        </p>
        {g.access.activationFailure ? <ActivationFailed g={g} /> : null}
        {g.state === "requested" && !mine && !can.approve ? (
          <p className="hint">
            {approvedByMe
              ? `You approved it; it waits for the rest of the rule "${g.approvalRule}".`
              : `Your approval would not count here: approvers must be in the groups of the rule "${g.approvalRule}", and each approves once.`}
          </p>
        ) : null}
        <div className="actions">
          {can.approve ? (
            <Action
              label="Approve"
              field={{ label: "Comment (optional)", required: false }}
              run={(c) => act("approve", c ? { comment: c } : {})()}
            />
          ) : null}
          {can.deny ? (
            <Action
              label="Deny"
              tone="danger"
              field={{ label: "Why deny", required: true }}
              run={(r) => act("deny", { reason: r })()}
            />
          ) : null}
          {can.cancel ? (
            <Action
              label="Cancel request"
              tone="plain"
              field={{ label: "Why cancel", required: true }}
              run={(r) => act("cancel", { reason: r })()}
            />
          ) : null}
          {can.activate ? <Action label="Activate" run={() => act("activate")()} /> : null}
          {can.release ? <Action label="Release now" run={() => act("release")()} /> : null}
          {can.extend ? <Extend run={(by, reason) => act("extend", { by, reason })()} /> : null}
          {can.revoke ? (
            <Action
              label="Revoke"
              tone="danger"
              field={{ label: "Why revoke", required: true }}
              run={(r) => act("revoke", { reason: r })()}
            />
          ) : null}
        </div>
        {can.credential ? (
          <div className="connect">
            {credential === null ? (
              <button type="button" onClick={showCredential}>
                Show connection details
              </button>
            ) : (
              <>
                <p>Connect with (valid until the grant ends; this read is audited):</p>
                <pre className="mono">{credential}</pre>
              </>
            )}
            <ErrorBox error={error} />
          </div>
        ) : null}
      </div>
      {g.state === "ended" && can.review ? <Review id={g.id} done={story.reload} /> : null}
      {g.state === "ended" && g.drill ? (
        <p className="hint">A drill's grant is never reviewed: its record is the drill run (see Drills).</p>
      ) : null}
      {g.state === "ended" && !g.drill && !can.review ? (
        <p className="hint">
          Waiting for its review; you cannot review it (its holder and approvers never review it; emergency and fallback
          uses go to the role's reviewers, where configured).
        </p>
      ) : null}
      {g.review ? (
        <div className="card">
          <h2>Review</h2>
          <p>
            <Chip tone={g.review.outcome === "unjustified" ? "bad" : "ok"}>{g.review.outcome}</Chip> by{" "}
            {g.review.reviewer} at {time(g.review.at)}
          </p>
          <p>{g.review.notes}</p>
        </div>
      ) : null}
      {s ? <Story g={g} s={s} can={can} /> : null}
    </>
  );
}

/** What happened: every audit event of the grant, its alarms and their delivery, its recording. */
function Story({ g, s, can }: { g: GrantView; s: StoryView; can: GrantPermissions }) {
  return (
    <>
      {s.grantIntegrity ? (
        <div className="banner bad" role="alert">
          This grant's record was edited outside Breakglass: {s.grantIntegrity.message}
        </div>
      ) : null}
      <section aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline</h2>
        <ol className="timeline">
          {s.timeline.map((e) => (
            <li
              key={e.seq}
              className={e.integrity || e.type.includes("blocked") || e.type.includes("emergency") ? "bad" : ""}
            >
              <span className="hint">{time(e.at)}</span> <strong>{e.type}</strong> by {e.actor}
              {typeof e.data.reason === "string" ? <> — {e.data.reason}</> : null}
              {e.integrity ? (
                <>
                  {" "}
                  <Chip tone="bad">audit row edited</Chip> <span className="hint">{e.integrity.message}</span>
                </>
              ) : null}
            </li>
          ))}
        </ol>
      </section>
      <section aria-labelledby="alarms-title">
        <h2 id="alarms-title">Alarms ({s.alarms.length})</h2>
        <Table head={["Event", "Channel", "Delivery"]} stack>
          {s.alarms.map((a) => (
            <tr key={a.id}>
              <td data-label="Event">{a.event}</td>
              <td data-label="Channel">{a.channel}</td>
              <td data-label="Delivery">
                {a.state === "delivered" ? (
                  <Chip tone="ok">delivered {a.latencyMs === null ? "" : `in ${a.latencyMs} ms`}</Chip>
                ) : a.state === "queued" && a.attempts === 0 ? (
                  <Chip tone="info">queued</Chip>
                ) : (
                  <Chip tone="bad">
                    {a.state} after {a.attempts} attempt(s){a.lastError ? `: ${a.lastError}` : ""}
                  </Chip>
                )}{" "}
                {a.deliveryCovered ? null : <span className="hint">(not covered by audit verification)</span>}
                {a.integrity ? (
                  <>
                    {" "}
                    <Chip tone="bad">alarm record edited</Chip> <span className="hint">{a.integrity.message}</span>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="rec-title">
        <h2 id="rec-title">Recording</h2>
        <p>
          {s.recording.statements} statement(s) through the gateway in {s.recording.gatewaySessions} session(s),{" "}
          {s.recording.blocked.length} blocked, {s.recording.terminalSessions} recorded terminal session(s).
        </p>
        {can.recording ? <RecordingPanel grantId={g.id} /> : null}
        <ul>
          {s.recording.blocked.map((b) => (
            <li key={b.at} className="bad mono">
              BLOCKED {time(b.at)}: {b.statement}
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}

async function fetchCredential(id: string): Promise<string> {
  const r = (await api.credential(id)) as { credential: string };
  return r.credential;
}

/**
 * Why the grant is not active although it was approved (or self-activated): the target's error,
 * how often it failed, and when the broker tries again — what the holder and the approvers need
 * at 3 a.m. instead of a grant that silently stays approved.
 */
function ActivationFailed({ g }: { g: GrantView }) {
  const f = g.access.activationFailure;
  if (!f) return null;
  const open = g.state === "approved" || g.state === "requested";
  return (
    <div className="banner bad" role="alert" data-testid="activation-failed">
      <strong>
        Activation failed at {g.target}
        {f.attempts > 1 ? ` (${f.attempts} attempts)` : ""}:
      </strong>{" "}
      <span className="mono">{f.lastError}</span>
      <br />
      {open
        ? f.nextAttemptAt
          ? `The broker tries again by itself at ${time(f.nextAttemptAt)}; the requester can also activate again now.`
          : "No more automatic attempts: the grant lapses soon. Fix the target, then activate again."
        : `Last attempt ${time(f.lastAttemptAt)}; the grant ${g.state === "approval_expired" ? "lapsed without access" : "did not get access this way"}.`}
    </div>
  );
}
