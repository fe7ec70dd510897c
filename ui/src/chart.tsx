// A bar chart of daily spend as inline SVG: no chart library, no inline script or style.
import { usd } from "./components";

export interface Point {
  day: string; // YYYY-MM-DD
  value: number;
}

export function SpendChart({ points, label }: { points: Point[]; label: string }) {
  const width = 600;
  const height = 160;
  const pad = 24;
  const max = Math.max(...points.map((p) => p.value), 0);
  const step = (width - pad) / Math.max(points.length, 1);
  const total = points.reduce((sum, p) => sum + p.value, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${label}: ${usd(total)} in total, highest day ${usd(max)}`}>
        <line x1={pad} y1={height - pad} x2={width} y2={height - pad} class="axis" />
        <text x={0} y={12} class="tick">
          {usd(max)}
        </text>
        {points.map((p, i) => {
          const h = max > 0 ? ((height - 2 * pad) * p.value) / max : 0;
          return (
            <rect key={p.day} x={pad + i * step + 1} y={height - pad - h} width={Math.max(step - 2, 1)} height={h} class="bar">
              <title>{`${p.day}: ${usd(p.value)}`}</title>
            </rect>
          );
        })}
        {points.length > 0 && (
          <>
            <text x={pad} y={height - 6} class="tick">
              {points[0].day}
            </text>
            <text x={width} y={height - 6} class="tick end">
              {points[points.length - 1].day}
            </text>
          </>
        )}
      </svg>
      <figcaption>{label}</figcaption>
    </figure>
  );
}

/** The last ``days`` days (UTC, oldest first), each with its spend (0 where no row). */
export function dailySeries(rows: { day?: string; cost_usd?: number }[], days: number, now = new Date()): Point[] {
  const byDay = new Map(rows.map((r) => [r.day ?? "", r.cost_usd ?? 0]));
  const points: Point[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - i)).toISOString().slice(0, 10);
    points.push({ day, value: byDay.get(day) ?? 0 });
  }
  return points;
}

/** When ``remaining`` runs out at the pace of the last seven days; null when nothing is spent. */
export function runsOutAt(points: Point[], remaining: number, now = new Date()): Date | null {
  const recent = points.slice(-7);
  const perDay = recent.reduce((sum, p) => sum + p.value, 0) / Math.max(recent.length, 1);
  if (perDay <= 0) return null;
  return new Date(now.getTime() + (remaining / perDay) * 86_400_000);
}
