// One admin collection (groups, secrets, budgets, rate limits, models): its table, a create form
// (JSON, or plain fields where the body is flat), edit as JSON, delete; each control only when the
// caller holds its permission. The API's validation message is shown next to the field it names.
import { Fragment, type ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { del, get, patch, pathPart, post, type List } from "../../api";
import { asError, ErrorText, FieldError, messageOf, OpenedRow, parseJson, Status, useLoad } from "../../components";

type Row = Record<string, unknown>;

export interface Column {
  label: string;
  value: (row: Row) => string;
}

export interface Field {
  name: string;
  label: string;
  secret?: boolean;
}

export interface ResourceProps {
  title: string;
  noun: string;
  path: string;
  columns: Column[];
  may: { create: boolean; modify: boolean; delete: boolean };
  /** The create body as JSON to start from; or ``fields`` for a flat form. */
  template?: Row;
  fields?: Field[];
  /** What an edit may change, as JSON; none: rows are not editable here. */
  editable?: (row: Row) => Row;
  /** More for one open row (a model's "try it", a group's members). */
  extra?: (row: Row, reload: () => void) => ComponentChildren;
  note?: string;
}

const keyOf = (row: Row) => String(row.name ?? row.id);

export function CreateForm({
  props,
  onCreated,
}: {
  props: Pick<ResourceProps, "noun" | "path" | "template" | "fields">;
  onCreated: () => void;
}) {
  const [text, setText] = useState(JSON.stringify(props.template ?? {}, null, 2));
  const [values, setValues] = useState<Record<string, string>>({});
  const [error, setError] = useState<Error | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const body = props.fields ? values : parseJson(text, `The new ${props.noun}`);
      await post(props.path, body);
      setValues({});
      onCreated();
    } catch (err) {
      setError(asError(err));
    }
  };
  return (
    <form onSubmit={submit}>
      <h2>New {props.noun}</h2>
      {props.fields ? (
        props.fields.map((f) => (
          <label key={f.name}>
            {f.label}
            {f.secret ? (
              <input type="password" autocomplete="new-password" value={values[f.name] ?? ""} onInput={(e) => setValues({ ...values, [f.name]: e.currentTarget.value })} />
            ) : (
              <input type="text" autocomplete="off" value={values[f.name] ?? ""} onInput={(e) => setValues({ ...values, [f.name]: e.currentTarget.value })} />
            )}
          </label>
        ))
      ) : (
        <label>
          New {props.noun} as JSON
          <textarea rows={10} value={text} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={error ? "true" : undefined} />
        </label>
      )}
      <FieldError error={error} />
      <button type="submit">Create {props.noun}</button>
    </form>
  );
}

function EditForm({ props, row, onSaved }: { props: ResourceProps; row: Row; onSaved: () => void }) {
  const [text, setText] = useState(JSON.stringify(props.editable?.(row) ?? row, null, 2));
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  const name = keyOf(row);
  const save = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setSaved(false);
    try {
      await patch(`${props.path}/${pathPart(name)}`, parseJson(text, `The ${props.noun}`));
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(asError(err));
    }
  };
  const editable = props.may.modify && props.editable !== undefined;
  return (
    <form onSubmit={save}>
      <label>
        {props.noun} {name} as JSON
        <textarea rows={10} readOnly={!editable} value={text} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={error ? "true" : undefined} />
      </label>
      <FieldError error={error} />
      {saved && <p role="status">Saved.</p>}
      {editable && <button type="submit">Save {props.noun} {name}</button>}
    </form>
  );
}

export function Resource(props: ResourceProps) {
  const rows = useLoad(() => get<List<Row>>(props.path), props.path);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const remove = async (row: Row) => {
    const name = keyOf(row);
    if (!confirm(`Delete the ${props.noun} "${name}"?`)) return;
    try {
      await del(`${props.path}/${pathPart(name)}`);
      rows.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const width = props.columns.length + 1;
  return (
    <>
      <h1>{props.title}</h1>
      {props.note && <p>{props.note}</p>}
      <ErrorText error={error} />
      <Status loaded={rows}>
        {(list) => (
          <table>
            <caption>
              {list.data.length} {props.title.toLowerCase()}
            </caption>
            <thead>
              <tr>
                {props.columns.map((c) => (
                  <th scope="col" key={c.label}>
                    {c.label}
                  </th>
                ))}
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((row) => {
                const name = keyOf(row);
                return (
                  <Fragment key={name}>
                    <tr>
                      {props.columns.map((c) => (
                        <td key={c.label}>{c.value(row)}</td>
                      ))}
                      <td class="actions">
                        <button type="button" aria-expanded={open === name} onClick={() => setOpen(open === name ? null : name)}>
                          {open === name ? "Close" : "Open"} {name}
                        </button>
                        {props.may.delete && (
                          <button type="button" class="danger" onClick={() => remove(row)}>
                            Delete {name}
                          </button>
                        )}
                      </td>
                    </tr>
                    {open === name && (
                      <OpenedRow colSpan={width} onClose={() => setOpen(null)}>
                        <EditForm props={props} row={row} onSaved={rows.reload} />
                        {props.extra?.(row, rows.reload)}
                      </OpenedRow>
                    )}
                  </Fragment>
                );
              })}
            </tbody>
          </table>
        )}
      </Status>
      {props.may.create && <CreateForm props={props} onCreated={rows.reload} />}
    </>
  );
}
