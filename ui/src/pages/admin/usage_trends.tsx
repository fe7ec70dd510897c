// Usage over time split by a key (the five largest groups and the rest), and the top users and
// models of the range. Every figure comes from /admin/usage/summary, in a bounded number of
// requests whatever the number of users: the largest groups first, then their figures per period.
import { get } from "../../api";
import { count, Status, usd, useLoad } from "../../components";
import { PeriodChart, type Series } from "./usage_chart";
import { MEASURES, nameOf, num, percent, ratio, SPLITS, valuesOf, type Period, type Row, type Summary } from "./usage_series";

const SERIES = 5;
const TOP_ROWS = 10;
// Keys where each request is in one group: the rest of a period is "other". A request with two
// tags (or a user in two groups) is in both, so for those the parts add up to more than the whole.
const DISJOINT = new Set(["model", "user", "provider", "token"]);

export const formatOf = (measure: string) => (measure === "cost_micros" ? (v: number) => usd(v / 1e6) : count);

interface OverTimeProps {
  filters: Record<string, string>;
  split: string | null; // a key of SPLITS, or none: one series
  period: Period;
  periods: string[]; // every period of the range, oldest first
  measure: string;
  perPeriod: Summary; // the totals per period, fetched once for the page
}

interface Split {
  top: Row[];
  rows: Row[];
}

async function loadSplit(filters: Record<string, string>, split: string, period: Period, measure: string): Promise<Split> {
  const top = await get<Summary>("/admin/usage/summary", { ...filters, group_by: split, sort: measure, limit: SERIES });
  const { field, param } = SPLITS[split];
  const picked = top.data.map((r) => r[field]).filter((v) => v !== null && v !== undefined).map(String);
  if (!picked.length) return { top: top.data, rows: [] };
  const rows = await get<Summary>("/admin/usage/summary", {
    ...filters,
    [param]: picked,
    group_by: `${period},${split}`,
    limit: 10000,
  });
  return { top: top.data, rows: rows.data };
}

export function OverTime({ filters, split, period, periods, measure, perPeriod }: OverTimeProps) {
  const key = JSON.stringify([filters, split, period, measure]);
  const loaded = useLoad<Split>(() => (split ? loadSplit(filters, split, period, measure) : Promise.resolve({ top: [], rows: [] })), key);
  const value = (r: Row) => num(r[measure]);
  const total = valuesOf(perPeriod.data, period, periods, value);
  const format = formatOf(measure);
  const caption = `${MEASURES[measure]} per ${period}${split ? ` by ${split}` : ""}`;
  return (
    <Status loaded={loaded}>
      {({ top, rows }) => {
        let series: Series[] = [{ name: `All ${split ? "requests" : MEASURES[measure].toLowerCase()}`, values: total }];
        if (split) {
          const { field } = SPLITS[split];
          series = top
            .filter((t) => t[field] !== null)
            .map((t) => ({
              name: nameOf(split, t),
              values: valuesOf(
                rows.filter((r) => r[field] === t[field]),
                period,
                periods,
                value,
              ),
            }));
          if (DISJOINT.has(split)) {
            const other = total.map((whole, i) => Math.max(0, (whole ?? 0) - series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0)));
            if (other.some((v) => v > 0)) series.push({ name: "Other", values: other, tone: "series-other" });
          }
        }
        const parts = series.map((s) => `${s.name} ${format(s.values.reduce<number>((sum, v) => sum + (v ?? 0), 0))}`);
        return (
          <>
            <PeriodChart caption={caption} periods={periods} series={series} format={format} kind="bars" summary={`in total ${parts.join(", ")}`} />
            {split && !DISJOINT.has(split) && <p class="note">A request with several {split}s counts in each of them; requests without one are not shown.</p>}
          </>
        );
      }}
    </Status>
  );
}

/** A link to this page with ``filters`` and one more: a group of a ranked table, looked at alone. */
function narrowed(filters: Record<string, string>, param: string, value: string, groupBy: string): string {
  const query = new URLSearchParams({ ...filters, [param]: value, group_by: groupBy });
  return `admin/usage?${query}`;
}

function Ranked({ filters, split, title }: { filters: Record<string, string>; split: "user" | "model"; title: string }) {
  const key = JSON.stringify([filters, split]);
  const loaded = useLoad(() => get<Summary>("/admin/usage/summary", { ...filters, group_by: split, sort: "cost_micros", limit: TOP_ROWS }), key);
  const { field, param } = SPLITS[split];
  return (
    <Status loaded={loaded}>
      {(s) => (
        <table>
          <caption>{title}</caption>
          <thead>
            <tr>
              <th scope="col">Rank</th>
              <th scope="col">{split === "user" ? "User" : "Model"}</th>
              <th scope="col">Requests</th>
              <th scope="col">Tokens</th>
              <th scope="col">Spend</th>
              <th scope="col">Share</th>
            </tr>
          </thead>
          <tbody>
            {s.data.map((r, i) => {
              const name = nameOf(split, r);
              const value = r[field];
              return (
                <tr key={String(value)}>
                  <td>{i + 1}</td>
                  <th scope="row">{value === null ? name : <a href={narrowed(filters, param, String(value), split === "user" ? "model" : "user")}>{name}</a>}</th>
                  <td>{count(num(r.requests))}</td>
                  <td>{count(num(r.total_tokens))}</td>
                  <td>{usd(num(r.cost_micros) / 1e6)}</td>
                  <td>{percent(ratio(num(r.cost_micros), num(s.totals.cost_micros)))}</td>
                </tr>
              );
            })}
            {s.data.length === 0 && (
              <tr>
                <td colSpan={6}>No requests in this range.</td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </Status>
  );
}

export function TopTables({ filters }: { filters: Record<string, string> }) {
  return (
    <>
      <Ranked filters={filters} split="user" title="Top users by spend" />
      <Ranked filters={filters} split="model" title="Top models by spend" />
    </>
  );
}
