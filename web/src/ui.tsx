// Small shared pieces: loading data, errors, badges, a bar chart and a time-series chart.
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type FulfilmentStatus, type OrderStatus, type Product, type ReturnStatus } from "./api";

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Run `load` now and whenever `deps` change; `reload()` runs it again. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Call `fn` every `ms` while `active`. */
export function useInterval(fn: () => void, ms: number, active = true): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms, active]);
}

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) {
    const p = error.problem;
    if (p.status === 403) return "You do not have permission to do that.";
    if (p.code === "VALIDATION_ERROR" && Array.isArray(p.errors)) {
      return (p.errors as { field?: string; message?: string }[])
        .map((e) => (e.field ? `${e.field}: ${e.message}` : e.message))
        .join("; ");
    }
    return p.detail || p.title || p.code;
  }
  return error instanceof Error ? error.message : String(error);
}

/** An error, read out. `explain` maps a problem's stable `code` to what it means for the person
 * (the server's `detail` follows it when it says more). */
export function ErrorBox({ error, explain }: { error: unknown; explain?: Record<string, string> }) {
  if (!error) return null;
  const problem = error instanceof ApiError ? error.problem : null;
  const known = problem && explain ? explain[problem.code] : undefined;
  return (
    <p class="error" role="alert" data-code={problem?.code}>
      {known ? (
        <>
          {known}
          {problem?.detail && problem.detail !== known && <span class="muted"> ({problem.detail})</span>}
        </>
      ) : (
        messageOf(error)
      )}
    </p>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p class="muted" role="status">
      {what}…
    </p>
  );
}

const STATUS_TEXT: Record<OrderStatus, string> = {
  PENDING: "Checking stock",
  AWAITING_CUSTOMER_DECISION: "Your decision needed",
  AWAITING_APPROVAL: "Awaiting approval",
  AWAITING_PAYMENT: "Processing payment",
  PAYMENT_FAILED: "Payment failed",
  PAID: "Paid",
  CONFIRMED: "Confirmed",
  REJECTED: "Rejected",
  CANCELLED: "Cancelled",
};

export function StatusBadge({ status }: { status: OrderStatus }) {
  const tone =
    status === "CONFIRMED" || status === "PAID"
      ? "ok"
      : status === "REJECTED" || status === "CANCELLED" || status === "PAYMENT_FAILED"
        ? "bad"
        : status === "AWAITING_CUSTOMER_DECISION"
          ? "warn"
          : "info";
  return (
    <span class={`badge ${tone}`} data-status={status}>
      {STATUS_TEXT[status] ?? status}
    </span>
  );
}

const FULFILMENT_TEXT: Record<FulfilmentStatus, [string, string]> = {
  PENDING: ["Preparing shipment", "info"],
  SHIPPED: ["Shipped", "warn"],
  DELIVERED: ["Delivered", "ok"],
};

export function FulfilmentBadge({ status }: { status: FulfilmentStatus }) {
  const [text, tone] = FULFILMENT_TEXT[status] ?? [status, "info"];
  return (
    <span class={`badge ${tone}`} data-fulfilment={status}>
      {text}
    </span>
  );
}

const RETURN_TEXT: Record<ReturnStatus, [string, string]> = {
  REQUESTED: ["Return requested", "info"],
  APPROVED: ["Return approved", "warn"],
  REJECTED: ["Return rejected", "bad"],
  RECEIVED: ["Received, refunding", "warn"],
  REFUNDED: ["Refunded", "ok"],
  REFUND_FAILED: ["Refund failed", "bad"],
};

export function ReturnBadge({ status }: { status: ReturnStatus }) {
  const [text, tone] = RETURN_TEXT[status] ?? [status, "info"];
  return (
    <span class={`badge ${tone}`} data-return-status={status}>
      {text}
    </span>
  );
}

// Product names for lists that carry only ids (shipments, returns): one request per product,
// shared by every screen; a product that is gone keeps its short id.
const names = new Map<string, Promise<string>>();

function nameOf(productId: string): Promise<string> {
  let found = names.get(productId);
  if (!found) {
    found = api<Product>(`/products/${encodeURIComponent(productId)}`).then(
      (p) => p.name,
      () => `product ${productId.slice(-8)}`,
    );
    names.set(productId, found);
  }
  return found;
}

/** "2× Tea Set, 1× Lamp": each line's own name, else the product's, else its short id. */
export function linesText(lines: { productId: string; quantity: number; name?: string | null }[], known: Record<string, string>): string {
  return lines.map((l) => `${l.quantity}× ${l.name ?? known[l.productId] ?? l.productId.slice(-8)}`).join(", ");
}

/** `{productId: name}` for `ids`, filled in as the names arrive. */
export function useProductNames(ids: string[]): Record<string, string> {
  const [known, setKnown] = useState<Record<string, string>>({});
  const key = [...new Set(ids)].sort().join(",");
  useEffect(() => {
    let live = true;
    const wanted = key ? key.split(",") : [];
    void Promise.all(wanted.map(async (id) => [id, await nameOf(id)] as const)).then(
      (pairs) => live && setKnown(Object.fromEntries(pairs)),
    );
    return () => {
      live = false;
    };
  }, [key]);
  return known;
}

export function StockBadge({ product }: { product: Product }) {
  if (product.stockAvailable <= 0) return <span class="badge bad">Out of stock</span>;
  if (product.lowStock) return <span class="badge warn">Only {product.stockAvailable} left</span>;
  return <span class="badge ok">In stock</span>;
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  const headingId = `${id ?? title.toLowerCase().replace(/\W+/g, "-")}-h`;
  return (
    <section aria-labelledby={headingId} class="card">
      <h2 id={headingId}>{title}</h2>
      {children}
    </section>
  );
}

/** Horizontal bars as SVG, with the numbers written out (readable without the picture). */
export function BarChart({
  title,
  data,
  format = (n) => String(n),
}: {
  title: string;
  data: { label: string; value: number }[];
  format?: (n: number) => string;
}) {
  const max = Math.max(1, ...data.map((d) => d.value));
  const row = 28;
  const labelWidth = 150;
  const width = 520;
  if (!data.length) return <p class="muted">No data for {title.toLowerCase()} yet.</p>;
  return (
    <figure class="chart">
      <svg
        role="img"
        aria-label={`${title}: ${data.map((d) => `${d.label} ${format(d.value)}`).join(", ")}`}
        viewBox={`0 0 ${width} ${data.length * row + 4}`}
        width="100%"
        preserveAspectRatio="xMinYMin meet"
      >
        {data.map((d, i) => {
          const w = Math.max(2, ((width - labelWidth - 110) * d.value) / max);
          return (
            <g key={d.label} transform={`translate(0 ${i * row + 2})`}>
              <text x={labelWidth - 8} y={row / 2 + 4} text-anchor="end" class="chart-label">
                {d.label.length > 20 ? `${d.label.slice(0, 19)}…` : d.label}
              </text>
              <rect x={labelWidth} y={4} width={w} height={row - 10} rx={3} class="chart-bar" />
              <text x={labelWidth + w + 6} y={row / 2 + 4} class="chart-value">
                {format(d.value)}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption>{title}</figcaption>
    </figure>
  );
}

/** One day of a time series: its revenue and its number of orders. */
export interface DayFigures {
  day: string; // YYYY-MM-DD (UTC, as the reports key their days)
  revenueCents: number;
  orders: number;
}

const shortDay = (day: string) =>
  new Date(`${day}T00:00:00Z`).toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });

/** Revenue (a bar per day, left axis) and orders (a dashed line with dots, right axis) per day
 * as SVG; a summary for screen readers and every day's figures in a table beneath. */
export function TimeSeriesChart({
  title,
  days,
  format,
}: {
  title: string;
  days: DayFigures[];
  format: (cents: number) => string;
}) {
  if (!days.length) return <p class="muted">No data for {title.toLowerCase()} yet.</p>;
  const [width, height] = [640, 240];
  const [left, right, top, bottom] = [78, 44, 12, 34];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const maxRevenue = Math.max(1, ...days.map((d) => d.revenueCents));
  const maxOrders = Math.max(1, ...days.map((d) => d.orders));
  // Each day owns a slot; its bar and its orders dot sit at the slot's middle.
  const slot = plotW / days.length;
  const x = (i: number) => left + slot * (i + 0.5);
  const yRevenue = (v: number) => top + plotH - (plotH * v) / maxRevenue;
  const yOrders = (v: number) => top + plotH - (plotH * v) / maxOrders;
  const ordersLine = days.map((d, i) => `${x(i).toFixed(1)},${yOrders(d.orders).toFixed(1)}`).join(" ");
  const barW = Math.max(1, slot * 0.7);
  const totalRevenue = days.reduce((n, d) => n + d.revenueCents, 0);
  const totalOrders = days.reduce((n, d) => n + d.orders, 0);
  const peak = days.reduce((best, d) => (d.revenueCents > best.revenueCents ? d : best), days[0]);
  const summary =
    `${title}, ${shortDay(days[0].day)} to ${shortDay(days[days.length - 1].day)}: ` +
    `${format(totalRevenue)} from ${totalOrders} orders` +
    (peak.revenueCents ? `; the best day ${shortDay(peak.day)} with ${format(peak.revenueCents)}` : "");
  const ticks = [...new Set([0, Math.floor((days.length - 1) / 2), days.length - 1])];
  return (
    <figure class="chart timeseries">
      <svg role="img" aria-label={summary} viewBox={`0 0 ${width} ${height}`} width="100%" preserveAspectRatio="xMinYMin meet">
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={left} x2={left + plotW} y1={top + plotH - plotH * f} y2={top + plotH - plotH * f} class="chart-grid" />
            <text x={left - 6} y={top + plotH - plotH * f + 4} text-anchor="end" class="chart-label">
              {format(Math.round(maxRevenue * f))}
            </text>
            <text x={left + plotW + 6} y={top + plotH - plotH * f + 4} class="chart-label">
              {Number.isInteger(maxOrders * f) ? maxOrders * f : ""}
            </text>
          </g>
        ))}
        {days.map((d, i) => (
          <rect
            key={d.day}
            x={x(i) - barW / 2}
            y={yRevenue(d.revenueCents)}
            width={barW}
            height={top + plotH - yRevenue(d.revenueCents)}
            class="chart-bar"
          />
        ))}
        <polyline points={ordersLine} class="chart-line orders" />
        {days.map((d, i) => (
          <circle key={d.day} cx={x(i)} cy={yOrders(d.orders)} r={days.length > 60 ? 1.5 : 3} class="chart-dot orders" />
        ))}
        {ticks.map((i) => (
          <text key={i} x={x(i)} y={height - 10} text-anchor="middle" class="chart-label">
            {shortDay(days[i].day)}
          </text>
        ))}
      </svg>
      <figcaption>
        {title}: <span class="key revenue">revenue</span> (left axis), <span class="key orders">orders</span> (right axis)
      </figcaption>
      <details>
        <summary>Figures by day</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">Orders</th>
              <th scope="col">Revenue</th>
            </tr>
          </thead>
          <tbody>
            {days.map((d) => (
              <tr key={d.day}>
                <th scope="row">{d.day}</th>
                <td>{d.orders}</td>
                <td>{format(d.revenueCents)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

export function LoadMore({ cursor, onMore }: { cursor?: string | null; onMore: (cursor: string) => void }) {
  if (!cursor) return null;
  return (
    <button type="button" class="secondary" onClick={() => onMore(cursor)}>
      Load more
    </button>
  );
}

/** A queue's status filter ("All" and each status) with its Refresh button. */
export function StatusFilter<S extends string>({
  id,
  statuses,
  value,
  onChange,
  onRefresh,
}: {
  id: string;
  statuses: readonly S[];
  value: S | "";
  onChange: (status: S | "") => void;
  onRefresh: () => void;
}) {
  return (
    <div class="row">
      <label for={id}>Status</label>
      <select id={id} value={value} onChange={(e) => onChange(e.currentTarget.value as S | "")}>
        <option value="">All</option>
        {statuses.map((s) => (
          <option key={s} value={s}>
            {s}
          </option>
        ))}
      </select>
      <button type="button" class="secondary" onClick={onRefresh}>
        Refresh
      </button>
    </div>
  );
}
