// The response cache (hit rate and what hits saved) and errors and latency, per period of the
// selected range: counts from /admin/usage/summary, latency percentiles from /admin/usage/latency.
import { get } from "../../api";
import { count, Status, usd, useLoad } from "../../components";
import { PeriodChart } from "./usage_chart";
import { ms, num, percent, ratio, valuesOf, type Latency, type Period, type Row, type Summary } from "./usage_series";

interface Props {
  filters: Record<string, string>;
  period: Period;
  periods: string[];
  perPeriod: Summary;
}

/** Hits over the requests the cache looked up (hits and misses); bypassed requests are not counted. */
const hitRate = (r: Row) => ratio(num(r.cache_hits), num(r.cache_hits) + num(r.cache_misses));

const fraction = (v: number) => percent(v);

export function CacheReport({ period, periods, perPeriod }: Props) {
  const t = perPeriod.totals;
  const looked = num(t.cache_hits) + num(t.cache_misses) + num(t.cache_bypasses);
  return (
    <section aria-labelledby="cache-heading">
      <h2 id="cache-heading">Response cache</h2>
      <dl class="stats">
        <div>
          <dt>Hit rate</dt>
          <dd>{percent(hitRate(t))}</dd>
        </div>
        <div>
          <dt>Hits</dt>
          <dd>{count(num(t.cache_hits))}</dd>
        </div>
        <div>
          <dt>Misses</dt>
          <dd>{count(num(t.cache_misses))}</dd>
        </div>
        <div>
          <dt>Bypassed</dt>
          <dd>{count(num(t.cache_bypasses))}</dd>
        </div>
        <div>
          <dt>Saved by hits</dt>
          <dd>{usd(num(t.saved_micros) / 1e6)}</dd>
        </div>
      </dl>
      {looked === 0 ? (
        <p>No request in this range went through the response cache (it may be off).</p>
      ) : (
        <div class="columns">
          <PeriodChart
            caption={`Cache hit rate per ${period}`}
            periods={periods}
            series={[{ name: "Hit rate", values: valuesOf(perPeriod.data, period, periods, hitRate) }]}
            format={fraction}
            kind="lines"
            summary={`${percent(hitRate(t))} over the range`}
          />
          <PeriodChart
            caption={`Saved by cache hits per ${period}`}
            periods={periods}
            series={[{ name: "Saved", values: valuesOf(perPeriod.data, period, periods, (r) => num(r.saved_micros)) }]}
            format={(v) => usd(v / 1e6)}
            kind="bars"
            summary={`${usd(num(t.saved_micros) / 1e6)} in total`}
          />
        </div>
      )}
    </section>
  );
}

export function ErrorsAndLatency({ filters, period, periods, perPeriod }: Props) {
  const key = JSON.stringify([filters, period]);
  const latency = useLoad(() => get<Latency>("/admin/usage/latency", { ...filters, group_by: period }), key);
  const t = perPeriod.totals;
  const errorsOf = (field: string) => valuesOf(perPeriod.data, period, periods, (r) => num(r[field]));
  return (
    <section aria-labelledby="errors-heading">
      <h2 id="errors-heading">Errors and latency</h2>
      <Status loaded={latency}>
        {(l) => (
          <>
            <dl class="stats">
              <div>
                <dt>Error rate</dt>
                <dd>{percent(ratio(num(t.errors), num(t.requests)))}</dd>
              </div>
              <div>
                <dt>Client errors (4xx)</dt>
                <dd>
                  {count(num(t.client_errors))} · {percent(ratio(num(t.client_errors), num(t.requests)))}
                </dd>
              </div>
              <div>
                <dt>Server errors (5xx)</dt>
                <dd>
                  {count(num(t.server_errors))} · {percent(ratio(num(t.server_errors), num(t.requests)))}
                </dd>
              </div>
              <div>
                <dt>Latency p50</dt>
                <dd>{ms(l.totals.latency_p50_ms as number | null)}</dd>
              </div>
              <div>
                <dt>Latency p95</dt>
                <dd>{ms(l.totals.latency_p95_ms as number | null)}</dd>
              </div>
            </dl>
            <div class="columns">
              <PeriodChart
                caption={`Errors per ${period}`}
                periods={periods}
                series={[
                  { name: "Client errors (4xx)", values: errorsOf("client_errors"), tone: "series-warn" },
                  { name: "Server errors (5xx)", values: errorsOf("server_errors"), tone: "series-bad" },
                ]}
                format={count}
                kind="bars"
                summary={`${count(num(t.client_errors))} client and ${count(num(t.server_errors))} server errors in ${count(num(t.requests))} requests`}
              />
              <PeriodChart
                caption={`Latency per ${period}`}
                periods={periods}
                series={[
                  { name: "p50", values: valuesOf(l.data, period, periods, (r) => r.latency_p50_ms as number | null) },
                  { name: "p95", values: valuesOf(l.data, period, periods, (r) => r.latency_p95_ms as number | null) },
                ]}
                format={(v) => ms(v)}
                kind="lines"
                summary={`p50 ${ms(l.totals.latency_p50_ms as number | null)}, p95 ${ms(l.totals.latency_p95_ms as number | null)} over the range`}
              />
            </div>
          </>
        )}
      </Status>
    </section>
  );
}
