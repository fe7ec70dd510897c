// The permissions granted directly to a user or a group: shown with the effective ones, granted
// and revoked through /admin/{users,groups}/{name}/permissions (the API checks that the actor may
// grant what they grant).
import { useState } from "preact/hooks";
import { del, get, pathPart, post } from "../../api";
import { asError, FieldError, Status, useLoad } from "../../components";

interface Grants {
  direct: string[];
  effective: string[];
}

interface Catalog {
  data: { name: string; description: string }[];
}

export function PermissionsEditor({ base, label, mayModify }: { base: string; label: string; mayModify: boolean }) {
  const grants = useLoad(() => get<Grants>(`${base}/permissions`), base);
  const catalog = useLoad(() => get<Catalog>("/admin/permissions"));
  const [choice, setChoice] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const act = async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      setChoice("");
      grants.reload();
    } catch (err) {
      setError(asError(err));
    }
  };
  return (
    <section aria-label={`Permissions of ${label}`}>
      <h3>Permissions of {label}</h3>
      <Status loaded={grants}>
        {(g) => (
          <>
            <ul>
              {g.direct.map((p) => (
                <li key={p}>
                  {p}{" "}
                  {mayModify && (
                    <button type="button" class="danger" onClick={() => act(() => del(`${base}/permissions/${pathPart(p)}`))}>
                      Revoke {p} from {label}
                    </button>
                  )}
                </li>
              ))}
              {g.direct.length === 0 && <li>none granted directly</li>}
            </ul>
            <p>Effective (with role and groups): {g.effective.join(", ") || "none"}</p>
          </>
        )}
      </Status>
      {mayModify && catalog.data && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            if (choice) act(() => post(`${base}/permissions`, { permissions: [choice] }));
          }}
        >
          <label>
            Permission to grant to {label}
            <select value={choice} onChange={(e) => setChoice(e.currentTarget.value)}>
              <option value="">choose…</option>
              {catalog.data.data.map((p) => (
                <option key={p.name} value={p.name}>
                  {p.name} — {p.description}
                </option>
              ))}
            </select>
          </label>
          <button type="submit">Grant to {label}</button>
        </form>
      )}
      <FieldError error={error} />
    </section>
  );
}
