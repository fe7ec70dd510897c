import { useState } from "preact/hooks";
import { post, type User } from "../api";
import { ErrorText, messageOf } from "../components";

export function Account({ me }: { me: User }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setDone(false);
    try {
      await post("/me/password", { current_password: current, new_password: next });
      setCurrent("");
      setNext("");
      setDone(true);
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <>
      <h1>My account</h1>
      <dl>
        <dt>E-mail</dt>
        <dd>{me.email}</dd>
        <dt>Role</dt>
        <dd>{me.role}</dd>
        <dt>Groups</dt>
        <dd>{me.groups.join(", ") || "—"}</dd>
      </dl>
      <h2>Change password</h2>
      <form onSubmit={submit}>
        <label>
          Current password
          <input type="password" autocomplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
        </label>
        <label>
          New password
          <input type="password" autocomplete="new-password" required value={next} onInput={(e) => setNext(e.currentTarget.value)} />
        </label>
        <ErrorText error={error} />
        {done && <p role="status">Password changed.</p>}
        <button type="submit">Change password</button>
      </form>
    </>
  );
}
