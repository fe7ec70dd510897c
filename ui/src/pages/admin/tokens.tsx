import { useState } from "preact/hooks";
import { del, get, pathPart, type Token } from "../../api";
import { ErrorText, messageOf, Status, useLoad } from "../../components";
import { TokenTable } from "../tokens";

const PAGE = 50;

interface TokenPage {
  data: Token[];
  next_after: number | null;
}

/** Searched, filtered by owner and paged by the server (by id, ``after`` the previous page's
 * last), so the page stays fast with any number of tokens. */
export function AdminTokens({ mayRevoke }: { mayRevoke: boolean }) {
  const [user, setUser] = useState("");
  const [draft, setDraft] = useState("");
  const [query, setQuery] = useState({ user: "", search: "" });
  const [afters, setAfters] = useState<(number | null)[]>([null]);
  const after = afters[afters.length - 1];
  const tokens = useLoad(
    () => get<TokenPage>("/admin/tokens", { user: query.user, search: query.search, after, limit: PAGE }),
    JSON.stringify([query, after]),
  );
  const [error, setError] = useState<string | null>(null);
  const revoke = async (token: Token) => {
    if (!confirm(`Revoke the token "${token.name}"?`)) return;
    try {
      await del(`/admin/tokens/${pathPart(token.id)}`);
      tokens.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <>
      <h1>All tokens</h1>
      <form
        class="inline"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ user: user.trim(), search: draft.trim() });
          setAfters([null]);
        }}
      >
        <label>
          Owner (e-mail or id)
          <input value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
        <label>
          Token name or prefix
          <input type="search" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorText error={error} />
      <Status loaded={tokens}>
        {(page) => (
          <>
            <TokenTable tokens={page.data} owner onRevoke={mayRevoke ? revoke : undefined} />
            <nav aria-label="Pages" class="pager">
              <span>Page {afters.length}</span>
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
