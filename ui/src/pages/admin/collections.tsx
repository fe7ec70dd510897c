// The admin collections built on <Resource>: groups, secrets, budgets, rate limits and models.
import { useState } from "preact/hooks";
import { del, gatewayUrl, pathPart, post } from "../../api";
import { asError, FieldError, usd } from "../../components";
import { PermissionsEditor } from "./permissions";
import { Resource } from "./resource";

type Row = Record<string, unknown>;
type May = (permission: string) => boolean;

const text = (value: unknown) => (value === null || value === undefined ? "" : String(value));
const rights = (may: May, kind: string) => ({
  create: may(`${kind}.create`),
  modify: may(`${kind}.modify`),
  delete: may(`${kind}.delete`),
});

function Members({ group, mayModify, onChanged }: { group: Row; mayModify: boolean; onChanged: () => void }) {
  const [user, setUser] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const name = String(group.name);
  const members = (group.members as { id: number; email: string }[]) ?? [];
  const act = async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      setUser("");
      onChanged();
    } catch (err) {
      setError(asError(err));
    }
  };
  return (
    <section aria-label={`Members of ${name}`}>
      <h3>Members of {name}</h3>
      <ul>
        {members.map((m) => (
          <li key={m.id}>
            {m.email}{" "}
            {mayModify && (
              <button type="button" class="danger" onClick={() => act(() => del(`/admin/groups/${pathPart(name)}/members/${pathPart(m.id)}`))}>
                Remove {m.email}
              </button>
            )}
          </li>
        ))}
      </ul>
      {mayModify && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            act(() => post(`/admin/groups/${pathPart(name)}/members`, { user }));
          }}
        >
          <label>
            Add member (e-mail or id)
            <input required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
          </label>
          <button type="submit">Add member</button>
        </form>
      )}
      <FieldError error={error} />
    </section>
  );
}

export function Groups({ may, held }: { may: May; held: ReadonlySet<string> }) {
  return (
    <Resource
      title="Groups"
      noun="group"
      path="/admin/groups"
      may={rights(may, "group")}
      columns={[
        { label: "Name", value: (r) => text(r.name) },
        { label: "Description", value: (r) => text(r.description) },
        { label: "Members", value: (r) => String((r.members as unknown[])?.length ?? 0) },
        { label: "Permissions", value: (r) => ((r.permissions as string[]) ?? []).join(", ") },
      ]}
      template={{ name: "team-a", description: "" }}
      editable={(r) => ({ name: r.name, description: r.description })}
      extra={(r, reload) => (
        <>
          <Members group={r} mayModify={may("group.modify")} onChanged={reload} />
          <PermissionsEditor
            base={`/admin/groups/${pathPart(String(r.name))}`}
            label={String(r.name)}
            held={held}
            mayModify={may("group.modify")}
            needsAllOfTarget={false}
            describe={may("user.view")}
          />
        </>
      )}
    />
  );
}

export function Secrets({ may }: { may: May }) {
  return (
    <Resource
      title="Secrets"
      noun="secret"
      path="/admin/secrets"
      note="Values are write-only: the gateway never shows a secret's value, here or anywhere else."
      may={rights(may, "secret")}
      columns={[
        { label: "Name", value: (r) => text(r.name) },
        { label: "Description", value: (r) => text(r.description) },
        { label: "Updated", value: (r) => new Date(String(r.updated_at)).toLocaleString() },
      ]}
      fields={[
        { name: "name", label: "Secret name" },
        { name: "value", label: "Secret value", secret: true },
        { name: "description", label: "Description" },
      ]}
      editable={(r) => ({ description: r.description, value: null })}
    />
  );
}

const usageText = (r: Row) => {
  const u = r.usage as Row | null;
  if (!u) return "";
  const spent = typeof u.spent_usd === "number" ? `spent ${usd(u.spent_usd)}` : "";
  const left = typeof u.remaining_usd === "number" ? `, ${usd(u.remaining_usd)} left` : "";
  return spent + left;
};

export function Budgets({ may }: { may: May }) {
  return (
    <Resource
      title="Budgets"
      noun="budget"
      path="/admin/budgets"
      may={rights(may, "budget")}
      columns={[
        { label: "Name", value: (r) => text(r.name) },
        { label: "Applies to", value: (r) => `${text(r.scope)} ${text(r.target_name)}` },
        { label: "Limit", value: (r) => (r.limit_usd != null ? usd(r.limit_usd as number) : `${text(r.limit_tokens)} tokens`) },
        { label: "Period", value: (r) => text(r.period) },
        { label: "Usage", value: usageText },
      ]}
      template={{ name: "team-a-monthly", scope: "group", target: "team-a", limit_usd: 100, period: "monthly" }}
      editable={(r) => ({ limit_usd: r.limit_usd, limit_tokens: r.limit_tokens, period: r.period, description: r.description })}
    />
  );
}

export function Limits({ may }: { may: May }) {
  return (
    <Resource
      title="Rate limits"
      noun="rate limit"
      path="/admin/limits"
      may={rights(may, "limit")}
      columns={[
        { label: "Name", value: (r) => text(r.name) },
        { label: "Applies to", value: (r) => `${text(r.scope)} ${text(r.target_name)}` },
        { label: "Windows", value: (r) => JSON.stringify(r.windows) },
        { label: "Concurrency", value: (r) => text(r.concurrency) },
        { label: "Enabled", value: (r) => (r.enabled ? "yes" : "no") },
      ]}
      template={{ name: "per-user", scope: "user", windows: [{ per: "minute", requests: 60 }] }}
      editable={(r) => ({ windows: r.windows, concurrency: r.concurrency, enabled: r.enabled, description: r.description })}
    />
  );
}

interface Tried {
  answer: string;
  ms: number;
  cost: string | null;
  status: number;
}

/** Sends a sample prompt through the data plane with an API token the admin pastes (the data
 * plane takes API tokens, not the session's access token); the token is not kept. */
function TryIt({ model }: { model: string }) {
  const [token, setToken] = useState("");
  const [prompt, setPrompt] = useState("Say hello in five words.");
  const [tried, setTried] = useState<Tried | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const send = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setTried(null);
    const started = performance.now();
    try {
      const response = await fetch(gatewayUrl("/v1/chat/completions"), {
        method: "POST",
        credentials: "omit",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: prompt }] }),
      });
      const ms = Math.round(performance.now() - started);
      const body = await response.json();
      const answer = response.ok ? String(body?.choices?.[0]?.message?.content ?? "") : String(body?.error?.message ?? response.statusText);
      setTried({ answer, ms, cost: response.headers.get("x-waypost-cost-usd"), status: response.status });
    } catch (err) {
      setError(asError(err));
    }
  };
  return (
    <section aria-label={`Try ${model}`}>
      <h3>Try {model}</h3>
      <form onSubmit={send}>
        <label>
          API token to call with
          <input type="password" autocomplete="off" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        </label>
        <label>
          Prompt
          <textarea rows={3} value={prompt} onInput={(e) => setPrompt(e.currentTarget.value)} />
        </label>
        <button type="submit">Send prompt</button>
      </form>
      <FieldError error={error} />
      {tried && (
        <div role="status">
          <dl>
          <dt>Status</dt>
          <dd>{tried.status}</dd>
          <dt>Answer</dt>
          <dd>{tried.answer}</dd>
          <dt>Latency</dt>
          <dd>{tried.ms} ms</dd>
          <dt>Cost</dt>
          <dd>{tried.cost !== null ? usd(Number(tried.cost)) : "—"}</dd>
          </dl>
        </div>
      )}
    </section>
  );
}

function Assign({ model, onChanged }: { model: string; onChanged: () => void }) {
  const [who, setWho] = useState("");
  const [kind, setKind] = useState<"users" | "groups">("users");
  const [error, setError] = useState<Error | null>(null);
  const act = async (action: "assign" | "unassign") => {
    setError(null);
    try {
      await post(`/admin/models/${pathPart(model)}/${action}`, { [kind]: [who] });
      setWho("");
      onChanged();
    } catch (err) {
      setError(asError(err));
    }
  };
  return (
    <section aria-label={`Assign ${model}`}>
      <h3>Who may use {model}</h3>
      <form class="inline" onSubmit={(e) => (e.preventDefault(), act("assign"))}>
        <label>
          Assign to
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as "users" | "groups")}>
            <option value="users">user</option>
            <option value="groups">group</option>
          </select>
        </label>
        <label>
          User or group (e-mail, name or id)
          <input required value={who} onInput={(e) => setWho(e.currentTarget.value)} />
        </label>
        <button type="submit">Assign</button>
        <button type="button" onClick={() => act("unassign")} disabled={!who}>
          Unassign
        </button>
      </form>
      <FieldError error={error} />
    </section>
  );
}

export function Models({ may }: { may: May }) {
  return (
    <Resource
      title="Models"
      noun="model"
      path="/admin/models"
      may={rights(may, "model")}
      columns={[
        { label: "Name", value: (r) => text(r.name) },
        { label: "Provider", value: (r) => text(r.provider) },
        { label: "Source", value: (r) => text(r.source) },
        { label: "Access", value: (r) => (r.public ? "everyone" : "assigned") },
        {
          label: "Assigned to",
          value: (r) => {
            const a = (r.assignments as { users?: unknown[]; groups?: unknown[] }) ?? {};
            return [...(a.users ?? []), ...(a.groups ?? [])].map((x) => (typeof x === "object" && x ? String((x as Row).email ?? (x as Row).name ?? "") : String(x))).join(", ");
          },
        },
        { label: "Disabled", value: (r) => text(r.disabled) },
      ]}
      template={{ name: "my-model", provider: "openai", upstream_model: "gpt-4o-mini", api_key: "secret://openai-key" }}
      editable={(r) => ({ ...(r.config as Row) })}
      extra={(r, reload) => (
        <>
          {may("model.modify") && <Assign model={String(r.name)} onChanged={reload} />}
          <TryIt model={String(r.name)} />
        </>
      )}
    />
  );
}
