// Figures per period as inline SVG: stacked bars (amounts) or lines (rates, latencies). Each chart
// says what it shows in its aria-label, has a legend, and carries the same figures as a table for
// anyone who cannot see it. No chart library, no inline script or style: a series' colour is a
// class (style.css) that the SVG reads through currentColor.

export interface Series {
  name: string;
  values: (number | null)[]; // one per period; null: no figure (a gap in a line)
  tone?: string; // a class from style.css; series-0, series-1, ... by position when absent
}

interface ChartProps {
  caption: string;
  periods: string[];
  series: Series[];
  format: (value: number) => string;
  kind: "bars" | "lines";
  /** One sentence of what the figures say, for the aria-label (e.g. the totals). */
  summary: string;
}

const WIDTH = 600;
const HEIGHT = 200;
const TOP = 18;
const BOTTOM = 22;
const LEFT = 4;

const toneOf = (s: Series, i: number) => s.tone ?? `series-${i}`;

function highest(props: ChartProps): number {
  if (props.kind === "lines") return Math.max(0, ...props.series.flatMap((s) => s.values.map((v) => v ?? 0)));
  return Math.max(0, ...props.periods.map((_, i) => props.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0)));
}

function Bars({ props, step, scale }: { props: ChartProps; step: number; scale: (v: number) => number }) {
  return (
    <>
      {props.periods.map((period, i) => {
        let base = HEIGHT - BOTTOM;
        return (
          <g key={period}>
            {props.series.map((s, j) => {
              const value = s.values[i] ?? 0;
              if (value <= 0) return null;
              const height = scale(value);
              base -= height;
              return (
                <rect key={s.name} x={LEFT + i * step + 1} y={base} width={Math.max(step - 2, 1)} height={height} class={toneOf(s, j)} fill="currentColor">
                  <title>{`${period} · ${s.name}: ${props.format(value)}`}</title>
                </rect>
              );
            })}
          </g>
        );
      })}
    </>
  );
}

function Lines({ props, step, scale }: { props: ChartProps; step: number; scale: (v: number) => number }) {
  const x = (i: number) => LEFT + (i + 0.5) * step;
  const y = (v: number) => HEIGHT - BOTTOM - scale(v);
  return (
    <>
      {props.series.map((s, j) => {
        // A period without a figure breaks the line rather than drawing it down to zero.
        const runs: string[][] = [[]];
        s.values.forEach((v, i) => (v === null ? runs.push([]) : runs[runs.length - 1].push(`${x(i)},${y(v)}`)));
        return (
          <g key={s.name} class={toneOf(s, j)}>
            {runs
              .filter((run) => run.length > 1)
              .map((run, k) => (
                <polyline key={k} points={run.join(" ")} fill="none" stroke="currentColor" stroke-width={2} />
              ))}
            {s.values.map((v, i) =>
              v === null ? null : (
                <circle key={i} cx={x(i)} cy={y(v)} r={2.5} fill="currentColor">
                  <title>{`${props.periods[i]} · ${s.name}: ${props.format(v)}`}</title>
                </circle>
              ),
            )}
          </g>
        );
      })}
    </>
  );
}

function FiguresTable({ props }: { props: ChartProps }) {
  const total = props.kind === "bars" && props.series.length > 1;
  // A bar is an amount: a period without requests had none of it. A line's gap has no figure.
  const cell = (v: number | null | undefined) =>
    v === null || v === undefined ? (props.kind === "bars" ? props.format(0) : "—") : props.format(v);
  return (
    <details class="chart-table">
      <summary>{props.caption}: the figures</summary>
      <table>
        <caption>{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Period</th>
            {props.series.map((s) => (
              <th scope="col" key={s.name}>
                {s.name}
              </th>
            ))}
            {total && <th scope="col">Total</th>}
          </tr>
        </thead>
        <tbody>
          {props.periods.map((period, i) => (
            <tr key={period}>
              <th scope="row">{period}</th>
              {props.series.map((s) => (
                <td key={s.name}>{cell(s.values[i])}</td>
              ))}
              {total && <td>{cell(props.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0))}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function PeriodChart(props: ChartProps) {
  const top = highest(props);
  const step = (WIDTH - LEFT) / Math.max(props.periods.length, 1);
  const scale = (v: number) => (top > 0 ? ((HEIGHT - TOP - BOTTOM) * v) / top : 0);
  const first = props.periods[0];
  const last = props.periods[props.periods.length - 1];
  return (
    <figure class="chart">
      <figcaption>{props.caption}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${props.caption}: ${props.summary}`}>
        <line x1={LEFT} y1={HEIGHT - BOTTOM} x2={WIDTH} y2={HEIGHT - BOTTOM} class="axis" />
        <text x={LEFT} y={12} class="tick">
          {props.format(top)}
        </text>
        {props.kind === "bars" ? <Bars props={props} step={step} scale={scale} /> : <Lines props={props} step={step} scale={scale} />}
        {first && (
          <text x={LEFT} y={HEIGHT - 6} class="tick">
            {first}
          </text>
        )}
        {last && last !== first && (
          <text x={WIDTH} y={HEIGHT - 6} class="tick end">
            {last}
          </text>
        )}
      </svg>
      {props.series.length > 0 && (
        <ul class="legend">
          {props.series.map((s, i) => (
            <li key={s.name}>
              <span class={`swatch ${toneOf(s, i)}`} aria-hidden="true" />
              {s.name}
            </li>
          ))}
        </ul>
      )}
      <FiguresTable props={props} />
    </figure>
  );
}
