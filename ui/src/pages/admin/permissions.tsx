// The permissions granted directly to a user or a group, shown with the effective ones, granted and
// revoked through /admin/{users,groups}/{name}/permissions. The controls follow the API's rules
// (docs/identity.md): granting or revoking a permission needs holding it, and changing a user's
// grants needs holding every permission they hold and is never allowed on oneself.
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

export interface PermissionsEditorProps {
  /** ``/admin/users/{id}`` or ``/admin/groups/{name}``. */
  base: string;
  label: string;
  /** The signed-in person's effective permissions: only these can be granted or revoked. */
  held: ReadonlySet<string>;
  /** Holds the modify permission of the kind (and, for a user, the target is someone else). */
  mayModify: boolean;
  /** A user's grants change only for one who holds everything that user holds. */
  needsAllOfTarget: boolean;
  /** The catalogue (``GET /admin/permissions``, ``user.view``) gives each permission its description. */
  describe: boolean;
  /** Why the grants cannot be changed here although ``mayModify`` would allow it, if they cannot. */
  refusal?: string;
}

export function PermissionsEditor(props: PermissionsEditorProps) {
  const { base, label, held } = props;
  const grants = useLoad(() => get<Grants>(`${base}/permissions`), base);
  const catalog = useLoad(() => (props.describe ? get<Catalog>("/admin/permissions") : Promise.resolve({ data: [] })));
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
  const described = new Map((catalog.data?.data ?? []).map((p) => [p.name, p.description]));
  const headingId = `permissions-${base.replace(/[^a-z0-9]+/gi, "-")}`;
  return (
    <section aria-labelledby={headingId}>
      <h3 id={headingId}>Permissions of {label}</h3>
      <Status loaded={grants}>
        {(g) => {
          const lacking = props.needsAllOfTarget ? g.effective.filter((p) => !held.has(p)) : [];
          const refusal = props.refusal ?? (lacking.length ? `Only someone who holds all of ${label}'s permissions can change them (you lack ${lacking.join(", ")}).` : null);
          const mayChange = props.mayModify && refusal === null;
          const grantable = [...held].filter((p) => !g.direct.includes(p)).sort();
          return (
            <>
              <ul aria-label={`Granted directly to ${label}`}>
                {g.direct.map((p) => (
                  <li key={p}>
                    <code>{p}</code>{" "}
                    {mayChange && held.has(p) && (
                      <button type="button" class="danger" onClick={() => act(() => del(`${base}/permissions/${pathPart(p)}`))}>
                        Revoke {p} from {label}
                      </button>
                    )}
                  </li>
                ))}
                {g.direct.length === 0 && <li>none granted directly</li>}
              </ul>
              {g.effective.join() !== g.direct.join() && <p>Effective, with the role and the groups: {g.effective.join(", ") || "none"}</p>}
              {props.mayModify && refusal && <p class="note">{refusal}</p>}
              {mayChange && grantable.length > 0 && (
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
                      {grantable.map((p) => (
                        <option key={p} value={p}>
                          {described.has(p) ? `${p} — ${described.get(p)}` : p}
                        </option>
                      ))}
                    </select>
                  </label>
                  <button type="submit" disabled={!choice}>
                    Grant to {label}
                  </button>
                </form>
              )}
            </>
          );
        }}
      </Status>
      <FieldError error={error} />
    </section>
  );
}
