import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { get, type User } from "../../api";
import { OpenedRow, Status, useLoad, when } from "../../components";
import { PermissionsEditor } from "./permissions";

const PAGE = 50;

interface UserPage {
  data: User[];
  next_after: number | null;
}

/** Searched and paged by the server (by id, ``after`` the previous page's last), so the page
 * stays fast with any number of users. */
export function Users({ me, may }: { me: User; may: (permission: string) => boolean }) {
  const held = new Set(me.permissions ?? []);
  const [draft, setDraft] = useState("");
  const [search, setSearch] = useState("");
  const [afters, setAfters] = useState<(number | null)[]>([null]);
  const after = afters[afters.length - 1];
  const [open, setOpen] = useState<number | null>(null);
  const users = useLoad(() => get<UserPage>("/admin/users", { search, after, limit: PAGE }), JSON.stringify([search, after]));
  return (
    <>
      <h1>Users</h1>
      <form
        class="inline"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setSearch(draft.trim());
          setAfters([null]);
        }}
      >
        <label>
          Search users
          <input type="search" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </label>
        <button type="submit">Search</button>
      </form>
      <Status loaded={users}>
        {(page) => (
          <>
            <table>
              <caption>
                Users{search && ` matching "${search}"`}, page {afters.length}
              </caption>
              <thead>
                <tr>
                  <th scope="col">E-mail</th>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Active</th>
                  <th scope="col">Groups</th>
                  <th scope="col">Last login</th>
                  <th scope="col"><span class="visually-hidden">Permissions</span></th>
                </tr>
              </thead>
              <tbody>
                {page.data.map((u) => (
                  <Fragment key={u.id}>
                    <tr>
                      <td>{u.email}</td>
                      <td>{u.display_name}</td>
                      <td>{u.role}</td>
                      <td>{u.active ? "yes" : "no"}</td>
                      <td>{u.groups.join(", ")}</td>
                      <td>{when(u.last_login_at)}</td>
                      <td>
                        <button type="button" aria-expanded={open === u.id} onClick={() => setOpen(open === u.id ? null : u.id)}>
                          Permissions of {u.email}
                        </button>
                      </td>
                    </tr>
                    {open === u.id && (
                      <OpenedRow colSpan={7} onClose={() => setOpen(null)}>
                          <PermissionsEditor
                            base={`/admin/users/${u.id}`}
                            label={u.email}
                            held={held}
                            mayModify={may("user.modify")}
                            needsAllOfTarget
                            describe
                            refusal={u.id === me.id ? "Nobody can change their own permissions: ask another administrator." : u.role === "gateway" ? "Gateway accounts hold no permissions: they only call models." : undefined}
                          />
                      </OpenedRow>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
            <nav aria-label="Pages" class="pager">
              <button type="button" disabled={afters.length === 1} onClick={() => setAfters(afters.slice(0, -1))}>
                Previous page
              </button>
              <button type="button" disabled={page.next_after === null} onClick={() => setAfters([...afters, page.next_after])}>
                Next page
              </button>
            </nav>
          </>
        )}
      </Status>
    </>
  );
}
