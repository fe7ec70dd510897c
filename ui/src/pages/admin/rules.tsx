import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { del, get, patch, pathPart, post, type List } from "../../api";
import { CreateForm } from "./resource";
import { ErrorText, FieldError, messageOf, OpenedRow, parseJson as parse, Status, useLoad } from "../../components";

interface Rule {
  id: number | null;
  name: string;
  description: string;
  weight: number;
  mode: string;
  enabled: boolean;
  source: string;
  conditions: Record<string, unknown>;
  action: Record<string, unknown>;
  error: string | null;
}

const SAMPLE = JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Hello" }] }, null, 2);

function RuleEditor({ rule, mayEdit, onSaved }: { rule: Rule; mayEdit: boolean; onSaved: () => void }) {
  const editable = { description: rule.description, weight: rule.weight, mode: rule.mode, enabled: rule.enabled, conditions: rule.conditions, action: rule.action };
  const [text, setText] = useState(JSON.stringify(editable, null, 2));
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  const save = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaved(false);
    try {
      await patch(`/admin/rules/${pathPart(rule.name)}`, parse(text, "The rule"));
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const id = `rule-${rule.name}`;
  return (
    <form onSubmit={save}>
      <label for={id}>Rule {rule.name} as JSON</label>
      <textarea id={id} rows={12} value={text} readOnly={!mayEdit || rule.source !== "database"} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={error ? "true" : undefined} />
      <FieldError error={error} />
      {saved && <p role="status">Saved.</p>}
      {mayEdit && rule.source === "database" && <button type="submit">Save rule {rule.name}</button>}
    </form>
  );
}

const NEW_RULE = {
  name: "block-red-team",
  weight: 10,
  conditions: [{ type: "header", header: "X-Team", operator: "exact", value: "red" }],
  action: { type: "block", message: "The red team is paused." },
};

export function Rules({ mayEdit, mayCreate, mayDelete }: { mayEdit: boolean; mayCreate: boolean; mayDelete: boolean }) {
  const rules = useLoad(() => get<List<Rule>>("/admin/rules"));
  const [open, setOpen] = useState<string | null>(null);
  const [ruleText, setRuleText] = useState("");
  const [sample, setSample] = useState(SAMPLE);
  const [result, setResult] = useState<unknown>(null);
  const [error, setError] = useState<Error | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);

  const remove = async (name: string) => {
    if (!confirm(`Delete the rule "${name}"? Requests it matched are no longer affected by it.`)) return;
    setDeleteError(null);
    try {
      await del(`/admin/rules/${pathPart(name)}`);
      if (open === name) setOpen(null);
      rules.reload();
    } catch (err) {
      setDeleteError(messageOf(err));
    }
  };

  const test = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setResult(null);
    try {
      const body: Record<string, unknown> = { request: parse(sample, "The sample request") };
      if (ruleText.trim()) body.rule = parse(ruleText, "The rule to try");
      setResult(await post("/admin/rules/test", body));
    } catch (err) {
      setError(err instanceof Error ? err : new Error(messageOf(err)));
    }
  };

  return (
    <>
      <h1>Rules</h1>
      {deleteError && <ErrorText error={deleteError} />}
      <Status loaded={rules}>
        {(list) => (
          <table>
            <caption>Rules, highest weight first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Weight</th>
                <th scope="col">Mode</th>
                <th scope="col">Enabled</th>
                <th scope="col">Source</th>
                <th scope="col">Problem</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((r) => (
                <Fragment key={r.name}>
                  <tr>
                    <td>{r.name}</td>
                    <td>{r.weight}</td>
                    <td>{r.mode}</td>
                    <td>{r.enabled ? "yes" : "no"}</td>
                    <td>{r.source}</td>
                    <td>{r.error ?? ""}</td>
                    <td>
                      <button type="button" aria-expanded={open === r.name} onClick={() => setOpen(open === r.name ? null : r.name)}>
                        {open === r.name ? "Close" : mayEdit ? "Edit" : "Show"} {r.name}
                      </button>
                      {mayDelete && r.source === "database" && (
                        <button type="button" class="danger" onClick={() => remove(r.name)}>
                          Delete {r.name}
                        </button>
                      )}
                    </td>
                  </tr>
                  {open === r.name && (
                    <OpenedRow colSpan={7} onClose={() => setOpen(null)}>
                      <RuleEditor rule={r} mayEdit={mayEdit} onSaved={rules.reload} />
                    </OpenedRow>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        )}
      </Status>
      {mayCreate && <CreateForm props={{ noun: "rule", path: "/admin/rules", template: NEW_RULE }} onCreated={rules.reload} />}
      <h2>Dry run</h2>
      <form onSubmit={test}>
        <label>
          Rule to try (JSON, optional: empty tries the stored rules)
          <textarea rows={6} value={ruleText} onInput={(e) => setRuleText(e.currentTarget.value)} />
        </label>
        <label>
          Sample request (JSON)
          <textarea rows={6} value={sample} onInput={(e) => setSample(e.currentTarget.value)} />
        </label>
        <FieldError error={error} />
        <button type="submit">Run dry run</button>
      </form>
      {result !== null && (
        <section aria-labelledby="dry-run-result">
          <h3 id="dry-run-result">Dry-run result</h3>
          <pre>
            <code>{JSON.stringify(result, null, 2)}</code>
          </pre>
        </section>
      )}
    </>
  );
}
