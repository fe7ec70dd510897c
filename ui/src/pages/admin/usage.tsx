// Usage by group, user, model or tag, with every filter kept in the page's URL query (a link
// reproduces the view): the summary table, usage over time, the top users and models, the response
// cache, errors and latency (usage_trends.tsx, usage_quality.tsx); and the audit log paged on the
// server by cursor.
import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { download, get, pathPart } from "../../api";
import { count, ErrorText, ExportButton, messageOf, OpenedRow, Status, usd, useLoad, when } from "../../components";
import { navigate, useLocation } from "../../router";
import { CacheReport, ErrorsAndLatency } from "./usage_quality";
import { FILTERS, MEASURES, PERIODS, periodsOf, SPLITS, type Period, type Row, type Summary } from "./usage_series";
import { OverTime, TopTables } from "./usage_trends";

const GROUPINGS = ["model", "user", "group", "tag", "provider", "day"] as const;

interface LogPage {
  data: Row[];
  next_cursor: string | null;
  has_more: boolean;
}

const METRICS = ["requests", "errors", "input_tokens", "output_tokens", "cost_usd"];

function AuditDetail({ requestId }: { requestId: string }) {
  const entry = useLoad(() => get<unknown>(`/admin/audit-logs/${pathPart(requestId)}`), requestId);
  return (
    <Status loaded={entry}>
      {(e) => (
        <pre class="detail">
          <code>{JSON.stringify(e, null, 2)}</code>
        </pre>
      )}
    </Status>
  );
}

const TAIL_SECONDS = 5;
const NO_NARROWING = { user: "", model: "", min_cost_usd: "", min_latency_ms: "" };

function AuditLog({ filters }: { filters: Record<string, string> }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [open, setOpen] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  const [draft, setDraft] = useState(NO_NARROWING);
  const [narrowing, setNarrowing] = useState(NO_NARROWING);
  const [live, setLive] = useState(false);
  const [exportError, setExportError] = useState<string | null>(null);
  const exportCsv = async () => {
    setExportError(null);
    const { cursor: _, limit: __, ...filtersOnly } = query;
    try {
      await download("/admin/audit-logs.csv", filtersOnly, "waypost-audit-log.csv");
    } catch (err) {
      setExportError(messageOf(err));
    }
  };
  const cursor = cursors[cursors.length - 1];
  const query = { ...filters, ...Object.fromEntries(Object.entries(narrowing).filter(([, v]) => v !== "")), status, cursor, limit: 50 };
  const key = JSON.stringify(query);
  const page = useLoad(() => get<LogPage>("/admin/audit-logs", query), key);
  // The live tail: the newest page asked for again every few seconds, paused on older pages
  // and while a request's detail is open.
  useEffect(() => {
    if (!live || cursor !== null || open !== null) return;
    const timer = setInterval(() => page.reload(), TAIL_SECONDS * 1000);
    return () => clearInterval(timer);
  }, [live, cursor, open, key]);
  const field = (name: keyof typeof NO_NARROWING, label: string, numeric = false) => {
    const onInput = (e: { currentTarget: HTMLInputElement }) => setDraft({ ...draft, [name]: e.currentTarget.value });
    return (
      <label>
        {label}
        {numeric ? <input type="number" min="0" step="any" value={draft[name]} onInput={onInput} /> : <input value={draft[name]} onInput={onInput} />}
      </label>
    );
  };
  return (
    <section aria-labelledby="audit-heading">
      <h2 id="audit-heading">Audit log</h2>
      <form
        class="inline"
        role="search"
        aria-label="Audit log filters"
        onSubmit={(e) => {
          e.preventDefault();
          setNarrowing({ ...draft, user: draft.user.trim(), model: draft.model.trim() });
          setCursors([null]);
        }}
      >
        {field("user", "Log user (e-mail or id)")}
        {field("model", "Log model")}
        {field("min_cost_usd", "Cost at least (USD)", true)}
        {field("min_latency_ms", "Latency at least (ms)", true)}
        <label>
          Status
          <select value={status} onChange={(e) => (setStatus(e.currentTarget.value), setCursors([null]))}>
            <option value="">any</option>
            <option value="ok">ok</option>
            <option value="error">error</option>
          </select>
        </label>
        <button type="submit">Filter the log</button>
        <label>
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
          Live tail (newest page every {TAIL_SECONDS} s)
        </label>
        <button type="button" onClick={exportCsv}>
          Export the log as CSV
        </button>
      </form>
      <ErrorText error={exportError} />
      <Status loaded={page}>
        {(p) => (
          <>
            <table>
              <caption>Requests, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">User</th>
                  <th scope="col">Model</th>
                  <th scope="col">Status</th>
                  <th scope="col">Cost</th>
                  <th scope="col">Latency</th>
                  <th scope="col"><span class="visually-hidden">Detail</span></th>
                </tr>
              </thead>
              <tbody>
                {p.data.map((r) => {
                  const id = String(r.request_id);
                  return (
                    <Fragment key={id}>
                      <tr>
                        <td>{when(r.created_at as string)}</td>
                        <td>{String(r.user_email ?? r.user_id ?? "")}</td>
                        <td>{String(r.model ?? r.requested_model ?? "")}</td>
                        <td>{String(r.status ?? "")}</td>
                        <td>{usd(r.cost_usd as number)}</td>
                        <td>{r.latency_ms != null ? `${r.latency_ms} ms` : "—"}</td>
                        <td>
                          <button type="button" aria-expanded={open === id} onClick={() => setOpen(open === id ? null : id)}>
                            {open === id ? "Hide" : "Details"}
                            <span class="visually-hidden"> of request {id}</span>
                          </button>
                        </td>
                      </tr>
                      {open === id && (
                        <OpenedRow colSpan={7} onClose={() => setOpen(null)}>
                          <AuditDetail requestId={id} />
                        </OpenedRow>
                      )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
            <nav aria-label="Audit log pages" class="pager">
              <button type="button" disabled={cursors.length === 1} onClick={() => setCursors(cursors.slice(0, -1))}>
                Newer
              </button>
              <button type="button" disabled={!p.has_more} onClick={() => setCursors([...cursors, p.next_cursor])}>
                Older
              </button>
            </nav>
          </>
        )}
      </Status>
    </section>
  );
}

function Choice({ name, label, value, options }: { name: string; label: string; value: string; options: Record<string, string> }) {
  return (
    <label>
      {label}
      {/* The option is selected, not the select given a value: a select has no default value to
          set, and a value would be forced back on every render while the person picks another. */}
      <select name={name}>
        {Object.entries(options).map(([v, text]) => (
          <option key={v} value={v} selected={v === value}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The usage over time, top tables, cache, errors and latency of the range, per ``period``. */
function Trends({ filters, split, period, measure }: { filters: Record<string, string>; split: string | null; period: Period; measure: string }) {
  const key = JSON.stringify([filters, period]);
  const perPeriod = useLoad(() => get<Summary>("/admin/usage/summary", { ...filters, group_by: period, limit: 10000 }), key);
  return (
    <Status loaded={perPeriod}>
      {(p) => {
        const periods = periodsOf(
          p.data.map((r) => String(r[period])),
          period,
          filters.from,
          filters.to,
        );
        return (
          <>
            <section aria-labelledby="time-heading">
              <h2 id="time-heading">Over time</h2>
              <OverTime filters={filters} split={split} period={period} periods={periods} measure={measure} perPeriod={p} />
            </section>
            <section aria-labelledby="top-heading">
              <h2 id="top-heading">Top users and models</h2>
              <TopTables filters={filters} />
            </section>
            <CacheReport filters={filters} period={period} periods={periods} perPeriod={p} />
            <ErrorsAndLatency filters={filters} period={period} periods={periods} perPeriod={p} />
          </>
        );
      }}
    </Status>
  );
}

export function AdminUsage({ mayAudit }: { mayAudit: boolean }) {
  const where = useLocation();
  const groupBy = where.query.get("group_by") || "model";
  const asked = where.query.get("period") ?? "";
  const period: Period = (PERIODS as readonly string[]).includes(asked) ? (asked as Period) : "day";
  const measure = where.query.get("measure") ?? "";
  const shown = measure in MEASURES ? measure : "cost_micros";
  const filters: Record<string, string> = {};
  for (const name of FILTERS) {
    const value = where.query.get(name);
    if (value) filters[name] = value;
  }
  const key = JSON.stringify([filters, groupBy]);
  const summary = useLoad(() => get<Summary>("/admin/usage/summary", { ...filters, group_by: groupBy }), key);
  const [error, setError] = useState<string | null>(null);

  const apply = (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const form = new FormData(event.currentTarget as HTMLFormElement);
      const query = new URLSearchParams();
      for (const [name, value] of form.entries()) if (typeof value === "string" && value) query.set(name, value);
      navigate(where.route, query);
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <>
      <h1>Usage</h1>
      <form class="filters" key={where.query.toString()} onSubmit={apply}>
        <Choice name="group_by" label="Group by" value={groupBy} options={Object.fromEntries(GROUPINGS.map((g) => [g, g]))} />
        <Choice name="period" label="Per" value={period} options={Object.fromEntries(PERIODS.map((p) => [p, p]))} />
        <Choice name="measure" label="Chart" value={shown} options={MEASURES} />
        {FILTERS.map((name) => (
          <label key={name}>
            {name === "from" ? "From (date)" : name === "to" ? "To (date)" : `${name[0].toUpperCase()}${name.slice(1)}`}
            {name === "from" || name === "to" ? (
              <input name={name} type="date" defaultValue={filters[name] ?? ""} />
            ) : (
              <input name={name} type="text" defaultValue={filters[name] ?? ""} />
            )}
          </label>
        ))}
        <button type="submit">Apply filters</button>
      </form>
      <ErrorText error={error} />
      <Status loaded={summary}>
        {(s) => {
          const keys = [...s.group_by, ...METRICS];
          return (
            <>
              <p>
                {count(s.totals.requests as number)} requests, {usd(s.totals.cost_usd as number)} in total
                {s.truncated && " (more groups matched than shown)"}.{" "}
                <ExportButton path="/admin/usage/summary.csv" query={{ ...filters, group_by: groupBy }} filename="waypost-usage.csv" label="Export CSV" />
              </p>
              <table>
                <caption>Usage by {s.group_by.join(", ")}</caption>
                <thead>
                  <tr>
                    {keys.map((k) => (
                      <th scope="col" key={k}>
                        {k.replace(/_/g, " ")}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {s.data.map((r, i) => (
                    <tr key={i}>
                      {keys.map((k) => (
                        <td key={k}>{k === "cost_usd" ? usd(r[k] as number) : r[k] === null ? "(none)" : String(r[k] ?? "")}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Status>
      <Trends filters={filters} split={groupBy in SPLITS ? groupBy : null} period={period} measure={shown} />
      {mayAudit && <AuditLog filters={filters} />}
    </>
  );
}

/** The audit log on its own, for those who may read it without the usage reports. */
export function AuditLogPage() {
  return (
    <>
      <h1>Audit log</h1>
      <AuditLog filters={{}} />
    </>
  );
}
