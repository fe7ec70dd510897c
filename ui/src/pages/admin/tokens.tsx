import { useState } from "preact/hooks";
import { del, get, pathPart, type List, type Token } from "../../api";
import { ErrorText, messageOf, Status, useLoad } from "../../components";
import { TokenTable } from "../tokens";

export function AdminTokens({ mayRevoke }: { mayRevoke: boolean }) {
  const [user, setUser] = useState("");
  const [filter, setFilter] = useState("");
  const tokens = useLoad(() => get<List<Token>>("/admin/tokens", { user: filter }), filter);
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
        onSubmit={(e) => {
          e.preventDefault();
          setFilter(user.trim());
        }}
      >
        <label>
          Owner (e-mail or id)
          <input value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <ErrorText error={error} />
      <Status loaded={tokens}>{(list) => <TokenTable tokens={list.data} owner onRevoke={mayRevoke ? revoke : undefined} />}</Status>
    </>
  );
}
