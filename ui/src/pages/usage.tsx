import { get } from "../api";
import { dailySeries, runsOutAt, SpendChart } from "../chart";
import { count, Status, usd, useLoad, when } from "../components";

interface Totals {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
}

interface BudgetView {
  name: string;
  scope?: string;
  period?: string;
  limit_usd?: number | null;
  limit_tokens?: number | null;
  usage?: { resets_at?: string | null; spent_usd?: number; remaining_usd?: number | null; remaining_tokens?: number | null } | null;
}

interface MyUsage {
  totals: Totals;
  data: { day?: string; cost_usd?: number }[];
  budgets: BudgetView[];
}

const DAYS = 30;

export function MyUsagePage() {
  const from = new Date(Date.now() - (DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
  const usage = useLoad(() => get<MyUsage>("/me/usage", { from, group_by: "day" }));
  return (
    <>
      <h1>My usage</h1>
      <Status loaded={usage}>
        {(u) => {
          const points = dailySeries(u.data, DAYS);
          return (
            <>
              <dl class="stats">
                <dt>Spend (30 days)</dt>
                <dd>{usd(u.totals.cost_usd)}</dd>
                <dt>Requests</dt>
                <dd>{count(u.totals.requests)}</dd>
                <dt>Errors</dt>
                <dd>{count(u.totals.errors)}</dd>
                <dt>Tokens in / out</dt>
                <dd>
                  {count(u.totals.input_tokens)} / {count(u.totals.output_tokens)}
                </dd>
              </dl>
              <SpendChart points={points} label="Spend per day, last 30 days (UTC)" />
              <h2>Budgets</h2>
              {u.budgets.length === 0 ? (
                <p>No budget applies to you.</p>
              ) : (
                <table>
                  <caption>Budgets that apply to you</caption>
                  <thead>
                    <tr>
                      <th scope="col">Budget</th>
                      <th scope="col">Limit</th>
                      <th scope="col">Spent</th>
                      <th scope="col">Remaining</th>
                      <th scope="col">Resets</th>
                      <th scope="col">At the current pace</th>
                    </tr>
                  </thead>
                  <tbody>
                    {u.budgets.map((b) => {
                      const remaining = b.usage?.remaining_usd;
                      const resets = b.usage?.resets_at ?? null;
                      const out = typeof remaining === "number" ? runsOutAt(points, remaining) : null;
                      const forecast =
                        typeof remaining !== "number"
                          ? "—"
                          : out === null
                            ? "no recent spend"
                            : resets && out.getTime() > Date.parse(resets)
                              ? "lasts until the reset"
                              : `runs out ${out.toLocaleString()}`;
                      return (
                        <tr key={b.name}>
                          <td>{b.name}</td>
                          <td>{b.limit_usd != null ? usd(b.limit_usd) : `${count(b.limit_tokens)} tokens`}</td>
                          <td>{usd(b.usage?.spent_usd)}</td>
                          <td>{typeof remaining === "number" ? usd(remaining) : `${count(b.usage?.remaining_tokens)} tokens`}</td>
                          <td>{when(resets)}</td>
                          <td>{forecast}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              )}
            </>
          );
        }}
      </Status>
    </>
  );
}
