import { useState } from "preact/hooks";
import { get, gatewayUrl, post, saveSession, uiBase, type List } from "../api";
import { ErrorText, messageOf, useLoad } from "../components";

interface Provider {
  name: string;
  display_name: string;
  login_url: string;
}

export function Login({ onLoggedIn }: { onLoggedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const providers = useLoad(() => get<List<Provider>>("/auth/identity-providers"));

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const pair = await post<{ access_token: string; refresh_token: string }>("/auth/login", { email, password });
      saveSession(pair.access_token, pair.refresh_token);
      onLoggedIn();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const ssoUrl = (provider: Provider) => {
    const url = gatewayUrl(provider.login_url);
    url.searchParams.set("redirect_to", uiBase.pathname); // back here, tokens in the fragment
    return url.href;
  };

  return (
    <main class="login">
      <h1>Sign in to Waypost</h1>
      <form onSubmit={submit}>
        <label>
          E-mail
          <input type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <ErrorText error={error} />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {providers.data && providers.data.data.length > 0 && (
        <section aria-labelledby="sso-heading">
          <h2 id="sso-heading">Single sign-on</h2>
          <ul class="plain">
            {providers.data.data.map((p) => (
              <li key={p.name}>
                <a class="button" href={ssoUrl(p)}>
                  Sign in with {p.display_name}
                </a>
              </li>
            ))}
          </ul>
        </section>
      )}
    </main>
  );
}
