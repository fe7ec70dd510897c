import { useState } from "preact/hooks";
import { del, get, pathPart, post, type List, type Token } from "../api";
import { CopyButton, ErrorText, Status, messageOf, useLoad, when } from "../components";

/** Tokens of the caller (/me/tokens) or, for admins, of everyone (/admin/tokens). */
export function TokenTable({ tokens, onRevoke, owner }: { tokens: Token[]; onRevoke?: (t: Token) => void; owner?: boolean }) {
  if (tokens.length === 0) return <p>No tokens.</p>;
  return (
    <table>
      <caption>API tokens</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Prefix</th>
          {owner && <th scope="col">User id</th>}
          <th scope="col">Models</th>
          <th scope="col">Expires</th>
          <th scope="col">Last used</th>
          {onRevoke && <th scope="col"><span class="visually-hidden">Actions</span></th>}
        </tr>
      </thead>
      <tbody>
        {tokens.map((t) => (
          <tr key={t.id}>
            <td>{t.name}</td>
            <td><code>{t.prefix}…</code></td>
            {owner && <td>{t.user_id}</td>}
            <td>{t.models?.join(", ") ?? "all mine"}</td>
            <td>{when(t.expires_at)}</td>
            <td>{when(t.last_used_at)}</td>
            {onRevoke && (
              <td>
                <button type="button" class="danger" aria-label={`Revoke ${t.name}`} onClick={() => onRevoke(t)}>
                  Revoke
                </button>
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function MyTokens() {
  const tokens = useLoad(() => get<List<Token>>("/me/tokens"));
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<Token | null>(null);
  const [error, setError] = useState<string | null>(null);

  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const token = await post<Token>("/me/tokens", { name, expires_in_days: days ? Number(days) : null });
      setCreated(token);
      setName("");
      setDays("");
      tokens.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const revoke = async (token: Token) => {
    if (!confirm(`Revoke the token "${token.name}"? Applications using it stop working.`)) return;
    try {
      await del(`/me/tokens/${pathPart(token.id)}`);
      tokens.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <>
      <h1>My tokens</h1>
      <form onSubmit={create} class="inline">
        <label>
          Token name
          <input required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Expires in days (optional)
          <input type="number" min={1} value={days} onInput={(e) => setDays(e.currentTarget.value)} />
        </label>
        <button type="submit">Create token</button>
      </form>
      <ErrorText error={error} />
      {created?.token && (
        <section class="secret" aria-labelledby="new-token-heading">
          <h2 id="new-token-heading">New token "{created.name}"</h2>
          <p>Copy it now: it is shown only once.</p>
          <p>
            <code data-testid="new-token">{created.token}</code> <CopyButton text={created.token} label="Copy token" />
          </p>
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </section>
      )}
      <Status loaded={tokens}>{(list) => <TokenTable tokens={list.data} onRevoke={revoke} />}</Status>
    </>
  );
}
