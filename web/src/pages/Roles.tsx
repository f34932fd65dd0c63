/** The configuration's domains and roles, read-only: what each role grants and who approves. */
import { api } from "../api.js";
import { duration } from "../format.js";
import { ErrorBox, Table, useData } from "../ui.js";

export function RolesPage() {
  const roles = useData(() => api.roles());
  return (
    <>
      <h1>Domains and roles</h1>
      <ErrorBox error={roles.error} />
      {(roles.data?.domains ?? []).map((d) => (
        <section key={d.name} aria-labelledby={`d-${d.name}`}>
          <h2 id={`d-${d.name}`}>{d.name}</h2>
          <Table head={["Role", "Target", "Approval", "Length (default / max)", "Requesters", "Emergency"]} stack>
            {d.roles.map((r) => (
              <tr key={r.id}>
                <td data-label="Role">
                  <strong>{r.name}</strong>
                  <div className="hint">{r.description}</div>
                </td>
                <td data-label="Target">{r.target}</td>
                <td data-label="Approval">{r.approval}</td>
                <td data-label="Length">
                  {duration(r.defaultDurationS)} / {duration(r.maxDurationS)}
                </td>
                <td data-label="Requesters">{r.requesters.join(", ")}</td>
                <td data-label="Emergency">{r.emergencyAllowed ? "allowed" : "no"}</td>
              </tr>
            ))}
          </Table>
        </section>
      ))}
    </>
  );
}
