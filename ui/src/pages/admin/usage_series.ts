// What the usage pages share: the API's answers, the filters of the page's URL, and figures per
// period (day, week or month, in UTC, each named by its first day as the API names them).

export type Row = Record<string, string | number | boolean | null>;

export interface Summary {
  group_by: string[];
  totals: Row;
  data: Row[];
  truncated: boolean;
}

export interface Latency {
  group_by: string[];
  totals: Row;
  data: Row[];
  truncated: boolean;
}

/** Filters the usage API takes, as they are in the page's URL. */
export const FILTERS = ["from", "to", "user", "group", "model", "tag"] as const;
export const PERIODS = ["day", "week", "month"] as const;
export type Period = (typeof PERIODS)[number];

/** What the "over time" chart measures: a summary metric, and how it reads. */
export const MEASURES: Record<string, string> = {
  cost_micros: "Spend",
  total_tokens: "Tokens",
  requests: "Requests",
};

/** Keys a chart can split its series by: the row field that names a group and the filter that picks it. */
export const SPLITS: Record<string, { field: string; param: string; none: string }> = {
  model: { field: "model", param: "model", none: "(no model)" },
  user: { field: "user_id", param: "user", none: "(no user)" },
  group: { field: "group", param: "group", none: "(no group)" },
  tag: { field: "tag", param: "tag", none: "(no tag)" },
  provider: { field: "provider", param: "provider", none: "(no provider)" },
  token: { field: "token_id", param: "token", none: "(no token)" },
};

/** A group's name for people: a user by e-mail, a token by id, the rest by their value. */
export function nameOf(key: string, row: Row): string {
  const split = SPLITS[key];
  const value = row[split.field];
  if (value === null || value === undefined) return split.none;
  if (key === "user") return String(row.user_email ?? `user ${value}`);
  if (key === "token") return `token ${value}`;
  return String(value);
}

export const num = (value: unknown): number => (typeof value === "number" ? value : 0);

export const percent = (value: number | null) => (value === null ? "—" : `${(value * 100).toFixed(1)}%`);

export const ms = (value: number | null) => (value === null ? "—" : `${Math.round(value).toLocaleString()} ms`);

/** The share of ``part`` in ``whole``; null when the whole is nothing. */
export const ratio = (part: number, whole: number): number | null => (whole > 0 ? part / whole : null);

const DAY = 86_400_000;
/** Beyond this many periods, a chart shows only the periods that have figures. */
const MAX_PERIODS = 1000;

function utcDay(date: Date): Date {
  return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
}

/** The first day of the period ``date`` is in. */
export function periodStart(date: Date, period: Period): Date {
  const day = utcDay(date);
  if (period === "week") return new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * DAY); // Monday
  if (period === "month") return new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1));
  return day;
}

function next(date: Date, period: Period): Date {
  if (period === "month") return new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1));
  return new Date(date.getTime() + (period === "week" ? 7 : 1) * DAY);
}

const iso = (date: Date) => date.toISOString().slice(0, 10);

/** A ``from``/``to`` value of the URL as a time (a plain date is midnight UTC, as the API reads it). */
export function moment(text: string | undefined): Date | null {
  if (!text) return null;
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Every period from ``from`` (else the first with figures) to ``to`` (exclusive; else today),
 * so that a period without requests shows as nothing rather than vanishing from the axis. */
export function periodsOf(seen: string[], period: Period, from: string | undefined, to: string | undefined, now = new Date()): string[] {
  const sorted = [...new Set(seen)].sort();
  const end = periodStart(moment(to) ? new Date(moment(to)!.getTime() - 1) : now, period);
  const first = moment(from) ?? (sorted.length ? moment(sorted[0]) : end);
  const out = new Set(sorted);
  let at = periodStart(first ?? end, period);
  for (let i = 0; at.getTime() <= end.getTime() && i < MAX_PERIODS; i++, at = next(at, period)) out.add(iso(at));
  if (out.size > MAX_PERIODS) return sorted;
  return [...out].sort();
}

/** ``rows`` (one per period, named by the ``period`` field) as one value per period of ``periods``. */
export function valuesOf(rows: Row[], period: string, periods: string[], value: (row: Row) => number | null): (number | null)[] {
  const byPeriod = new Map(rows.map((r) => [String(r[period]), r]));
  return periods.map((p) => {
    const row = byPeriod.get(p);
    return row ? value(row) : null;
  });
}
