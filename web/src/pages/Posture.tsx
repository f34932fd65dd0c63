/** Is every break-glass path ready: roles (last use, drills, reviews), credentials, tier-2 reviews. */
import { api } from "../api.js";
import { time } from "../format.js";
import { Chip, ErrorBox, Table, useData } from "../ui.js";

const tone = (s: string) => (s === "green" ? "ok" : s === "amber" ? "warn" : "bad") as "ok" | "warn" | "bad";

export function PosturePage() {
  const p = useData(() => api.posture());
  if (p.error) return <ErrorBox error={p.error} />;
  if (!p.data) return <p aria-busy="true">Loading…</p>;
  const items = [
    ...p.data.roles.flatMap((r) => r.items.map((i) => ({ ...i, what: `${r.role}: ${i.what}` }))),
    ...p.data.vault,
    ...p.data.credentials
      .filter((c) => c.overdue)
      .map((c) => ({ level: "red" as const, what: `${c.credential} is overdue for rotation`, fix: c.fix })),
  ];
  return (
    <>
      <h1>
        Posture <Chip tone={tone(p.data.status)}>{p.data.status.toUpperCase()}</Chip>
      </h1>
      <p className="hint">Checked {time(p.data.checkedAt)}</p>
      <section aria-labelledby="todo-title">
        <h2 id="todo-title">To do ({items.length})</h2>
        <ul className="cards">
          {items.map((i) => (
            <li key={i.what} className="card">
              <Chip tone={i.level === "red" ? "bad" : "warn"}>{i.level}</Chip> {i.what}
              <div className="mono">{i.fix}</div>
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="roles-title">
        <h2 id="roles-title">Roles</h2>
        <Table head={["Role", "Status", "Last use", "Last drill", "Reviews open/overdue"]} stack>
          {p.data.roles.map((r) => (
            <tr key={r.role}>
              <td data-label="Role">{r.role}</td>
              <td data-label="Status">
                <Chip tone={tone(r.status)}>{r.status}</Chip>
              </td>
              <td data-label="Last use">{time(r.lastUse)}</td>
              <td data-label="Last drill">
                {r.lastDrill ? `${r.lastDrill.name} ${r.lastDrill.result} ${time(r.lastDrill.at)}` : "never"}
              </td>
              <td data-label="Reviews">
                {r.openReviews}/{r.overdueReviews}
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="cred-title">
        <h2 id="cred-title">Break-glass credentials</h2>
        <Table head={["Credential", "Last rotated", "State"]} stack>
          {p.data.credentials.map((c) => (
            <tr key={c.credential}>
              <td data-label="Credential">{c.credential}</td>
              <td data-label="Rotated">
                {c.rotatedAt ? `${time(c.rotatedAt)} (${c.ageDays} d)` : "never by Breakglass"}
              </td>
              <td data-label="State">{c.overdue ? <Chip tone="bad">overdue</Chip> : <Chip tone="ok">ok</Chip>}</td>
            </tr>
          ))}
        </Table>
      </section>
    </>
  );
}
