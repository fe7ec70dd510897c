import { useEffect, useRef, useState } from "preact/hooks";
import { accessToken, get, logOut, onSignedOut, takeFragmentTokens, type User } from "./api";
import { ErrorText, messageOf } from "./components";
import { Account } from "./pages/account";
import { Budgets, Groups, Limits, Models, Secrets } from "./pages/admin/collections";
import { DeploymentHealth } from "./pages/admin/health";
import { Rules } from "./pages/admin/rules";
import { AdminTokens } from "./pages/admin/tokens";
import { AdminUsage, AuditLogPage } from "./pages/admin/usage";
import { Users } from "./pages/admin/users";
import { Login } from "./pages/login";
import { MyModels } from "./pages/models";
import { Snippets } from "./pages/snippets";
import { MyTokens } from "./pages/tokens";
import { MyUsagePage } from "./pages/usage";
import { interceptLinks, navigate, useLocation } from "./router";

interface Page {
  route: string;
  title: string;
  /** The permissions of which the page needs one (its API refuses without); none: anyone signed in. */
  needs?: string[];
  render: (me: User, may: (p: string) => boolean) => preact.JSX.Element;
}

const PAGES: Page[] = [
  { route: "models", title: "My models", render: () => <MyModels /> },
  { route: "tokens", title: "My tokens", render: () => <MyTokens /> },
  { route: "usage", title: "My usage", render: () => <MyUsagePage /> },
  { route: "snippets", title: "Snippets", render: () => <Snippets /> },
  { route: "account", title: "My account", render: (me) => <Account me={me} /> },
  { route: "admin/users", title: "Users", needs: ["user.view"], render: (me, may) => <Users me={me} may={may} /> },
  { route: "admin/tokens", title: "All tokens", needs: ["token.view"], render: (_, may) => <AdminTokens mayRevoke={may("token.delete")} /> },
  { route: "admin/rules", title: "Rules", needs: ["rule.view"], render: (_, may) => <Rules mayEdit={may("rule.modify")} mayCreate={may("rule.create")} mayDelete={may("rule.delete")} /> },
  { route: "admin/usage", title: "Usage", needs: ["usage.view"], render: (_, may) => <AdminUsage mayAudit={may("audit.view")} /> },
  { route: "admin/audit-log", title: "Audit log", needs: ["audit.view"], render: () => <AuditLogPage /> },
  { route: "admin/models", title: "Models", needs: ["model.view"], render: (_, may) => <Models may={may} /> },
  { route: "admin/groups", title: "Groups", needs: ["group.view"], render: (me, may) => <Groups may={may} held={new Set(me.permissions ?? [])} /> },
  { route: "admin/secrets", title: "Secrets", needs: ["secret.view"], render: (_, may) => <Secrets may={may} /> },
  { route: "admin/budgets", title: "Budgets", needs: ["budget.view"], render: (_, may) => <Budgets may={may} /> },
  { route: "admin/limits", title: "Rate limits", needs: ["limit.view"], render: (_, may) => <Limits may={may} /> },
  { route: "admin/health", title: "Deployment health", needs: ["model.view"], render: () => <DeploymentHealth /> },
];

export function App() {
  const [me, setMe] = useState<User | null>(null);
  const [signedIn, setSignedIn] = useState(() => takeFragmentTokens() || accessToken() !== null);
  const [error, setError] = useState<string | null>(null);
  const where = useLocation();

  useEffect(() => {
    onSignedOut.listener = () => {
      setMe(null);
      setSignedIn(false);
    };
  }, []);
  useEffect(() => {
    if (!signedIn) return;
    get<User>("/me").then(setMe, (err) => setError(messageOf(err)));
  }, [signedIn]);

  if (!signedIn) return <Login onLoggedIn={() => setSignedIn(true)} />;
  if (!me) return error ? <ErrorText error={error} /> : <p aria-busy="true">Loading…</p>;
  const signOut = async () => {
    await logOut();
    setMe(null);
    setSignedIn(false);
  };
  return <Shell me={me} route={where.route} onSignOut={signOut} />;
}

function Shell({ me, route, onSignOut }: { me: User; route: string; onSignOut: () => void }) {
  // Shown controls follow the caller's effective permissions (GET /me), as the API enforces them.
  const granted = new Set(me.permissions ?? []);
  const may = (permission: string) => granted.has(permission);
  const pages = PAGES.filter((p) => !p.needs || p.needs.some(may));
  const page = pages.find((p) => p.route === route);
  const shown = useRef<Page | undefined>(undefined);
  useEffect(() => {
    if (!page) return navigate("tokens", undefined, true);
    document.title = `${page.title} · Waypost`;
    // After a move to another page (not the first load), the focus goes to the new content, as a
    // page load would put a keyboard or screen reader user at its start, not on the old link.
    if (shown.current && shown.current !== page) document.getElementById("main")?.focus();
    shown.current = page;
  }, [page]);
  const mine = pages.filter((p) => !p.needs);
  const admin = pages.filter((p) => p.needs);
  return (
    <div class="layout" onClick={interceptLinks}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <span class="brand">Waypost</span>
        <span class="who">{me.email}</span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <nav aria-label="Main">
        <Links pages={mine} current={page} />
        {admin.length > 0 && (
          <>
            <h2 class="nav-heading">Administration</h2>
            <Links pages={admin} current={page} label="Administration" />
          </>
        )}
      </nav>
      <main id="main" tabIndex={-1}>
        {page?.render(me, may)}
      </main>
    </div>
  );
}

function Links({ pages, current, label }: { pages: Page[]; current: Page | undefined; label?: string }) {
  return (
    <ul aria-label={label}>
      {pages.map((p) => (
        <li key={p.route}>
          <a href={p.route} aria-current={p === current ? "page" : undefined}>
            {p.title}
          </a>
        </li>
      ))}
    </ul>
  );
}
