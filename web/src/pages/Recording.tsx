/**
 * What a grant's sessions did: the statements its gateway sessions ran (blocked ones in red) and
 * its recorded terminal sessions, each replayed by an asciicast player. Opening it is audited
 * (grant.recording_read), so it loads only when asked.
 */
import { useEffect, useRef, useState } from "react";
import { api, type RecordingView, type TerminalRecordingView } from "../api.js";
import { time } from "../format.js";
import { Chip, ErrorBox, Table } from "../ui.js";

/** Terminal output as text: escape sequences dropped, carriage returns and backspaces applied. */
export function screenText(raw: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences are control characters
  const plain = raw.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*\u0007|\u001b[()][0-9A-B]/g, "");
  const lines: string[] = [""];
  for (const ch of plain) {
    const last = lines.length - 1;
    if (ch === "\n") lines.push("");
    else if (ch === "\r") {
      // A lone \r rewrites the line; \r\n is handled by the \n that follows.
    } else if (ch === "\b") lines[last] = (lines[last] ?? "").slice(0, -1);
    else if (ch >= " " || ch === "\t") lines[last] = (lines[last] ?? "") + ch;
  }
  return lines.join("\n");
}

function Player({ id }: { id: string }) {
  const [rec, setRec] = useState<TerminalRecordingView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [shown, setShown] = useState(0); // events shown so far
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const timer = useRef<number | null>(null);
  useEffect(() => {
    api.terminal(id).then(setRec, setError);
  }, [id]);
  useEffect(() => {
    if (!playing || !rec) return;
    if (shown >= rec.events.length) {
      setPlaying(false);
      return;
    }
    const prev = shown === 0 ? 0 : (rec.events[shown - 1]?.[0] ?? 0);
    const next = rec.events[shown]?.[0] ?? prev;
    // Idle pauses longer than 2 s are cut to 2 s, like asciinema's idle limit.
    const wait = (Math.min(2, next - prev) * 1000) / speed;
    timer.current = window.setTimeout(() => setShown(shown + 1), wait);
    return () => {
      if (timer.current !== null) window.clearTimeout(timer.current);
    };
  }, [playing, shown, rec, speed]);
  if (error) return <ErrorBox error={error} />;
  if (!rec) return <p aria-busy="true">Loading the recording…</p>;
  const output = rec.events
    .slice(0, shown)
    .filter((e) => e[1] === "o")
    .map((e) => e[2])
    .join("");
  const total = rec.events.at(-1)?.[0] ?? 0;
  return (
    <div className="player">
      <div className="controls">
        <button
          type="button"
          onClick={() => {
            if (shown >= rec.events.length) setShown(0);
            setPlaying(shown >= rec.events.length || !playing);
          }}
        >
          {playing ? "Pause" : shown >= rec.events.length ? "Replay" : "Play"}
        </button>
        <button
          type="button"
          onClick={() => {
            setPlaying(false);
            setShown(rec.events.length);
          }}
        >
          Show all
        </button>
        <label htmlFor={`speed-${id}`} className="inline">
          Speed
        </label>
        <select id={`speed-${id}`} value={speed} onChange={(e) => setSpeed(Number(e.target.value))}>
          <option value={1}>1×</option>
          <option value={4}>4×</option>
          <option value={16}>16×</option>
        </select>
        <span className="hint">
          {shown}/{rec.events.length} events · {total.toFixed(1)} s · {rec.session.width}×{rec.session.height}
          {rec.session.recordInput ? " · keystrokes recorded" : ""}
        </span>
      </div>
      <pre className="terminal" title={`Terminal output of ${rec.session.command}`}>
        {screenText(output)}
      </pre>
    </div>
  );
}

export function RecordingPanel({ grantId }: { grantId: string }) {
  const [rec, setRec] = useState<RecordingView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<string | null>(null);
  if (!rec) {
    return (
      <>
        <button type="button" onClick={() => api.recording(grantId).then(setRec, setError)}>
          Open the recording (the read is audited)
        </button>
        <ErrorBox error={error} />
      </>
    );
  }
  return (
    <>
      <h3>Statements ({rec.statements.length})</h3>
      {rec.statements.length === 0 ? (
        <p>No statement went through the gateway.</p>
      ) : (
        <Table head={["When", "Kind", "Statement", "Rows"]}>
          {rec.statements.map((s) => (
            <tr key={`${s.session}-${s.seq}`} className={s.kind === "blocked" ? "bad" : ""}>
              <td>{time(s.startedAt)}</td>
              <td>{s.kind}</td>
              <td className="mono">{s.text}</td>
              <td>{s.rows}</td>
            </tr>
          ))}
        </Table>
      )}
      <h3>Terminal sessions ({rec.terminalSessions.length})</h3>
      <ul className="cards">
        {rec.terminalSessions.map((t) => (
          <li key={t.id} className="card">
            <span className="mono">{t.command}</span> — {time(t.startedAt)} to {time(t.endedAt)}
            {t.endReason ? ` (${t.endReason})` : ""}{" "}
            {t.integrity ? (
              <>
                <Chip tone="bad">record edited</Chip> <span className="hint">{t.integrity.message}</span>{" "}
              </>
            ) : null}
            {open === t.id ? null : (
              <button type="button" onClick={() => setOpen(t.id)}>
                Replay
              </button>
            )}
            {open === t.id ? <Player id={t.id} /> : null}
          </li>
        ))}
      </ul>
    </>
  );
}
