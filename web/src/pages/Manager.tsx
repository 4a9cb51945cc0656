// Manager: the approval queue, the returns queue, and the sales and funnel reports with charts.
import { useState } from "preact/hooks";
import {
  api,
  money,
  RETURN_STATUSES,
  session,
  when,
  type Funnel,
  type Order,
  type Page,
  type Return,
  type ReturnStatus,
  type SalesReport,
} from "../api";
import { ApprovalForm } from "./Orders";
import {
  BarChart,
  ErrorBox,
  LoadMore,
  Loading,
  StatusFilter,
  ReturnBadge,
  Section,
  TimeSeriesChart,
  linesText,
  useAsync,
  useProductNames,
  type DayFigures,
} from "../ui";

export function Approvals() {
  const queue = useAsync(() => api<Page<Order>>("/orders", { query: { status: "AWAITING_APPROVAL", limit: 100 } }), []);
  const [done, setDone] = useState<Record<string, string>>({});
  const items = queue.data?.items ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Approval queue</h1>
      <p>High-value orders and orders flagged by the fraud rules wait here until approved or rejected.</p>
      <button type="button" class="secondary" onClick={queue.reload}>
        Refresh
      </button>
      <ErrorBox error={queue.error} />
      {queue.loading && !items.length && <Loading />}
      {!queue.loading && !items.length && <p>No orders are waiting for approval.</p>}
      <ul class="queue">
        {items.map((o) => (
          <li key={o.orderId} class="card" data-order-id={o.orderId}>
            <h2 class="h3">
              <a href={`/orders/${o.orderId}`}>Order #{o.orderId.slice(-8)}</a> · {money(o.totalCents, o.currency)}{" "}
              {o.flags.fraudFlag ? <span class="badge bad">fraud check</span> : <span class="badge info">high value</span>}
            </h2>
            <p class="muted">
              {when(o.createdAt)} · customer {o.userId.slice(-8)} · {o.items.map((i) => `${i.quantity}× ${i.name}`).join(", ")}
            </p>
            {done[o.orderId] ? (
              <p role="status">Order {done[o.orderId] === "REJECTED" ? "rejected" : "approved"}.</p>
            ) : (
              <ApprovalForm orderId={o.orderId} onDone={(status) => setDone({ ...done, [o.orderId]: status })} />
            )}
          </li>
        ))}
      </ul>
    </>
  );
}

/** The returns queue (Manager and Admin): approve or reject what customers asked to send back;
 * an Admin also receives approved returns at the warehouse, which starts the refund. */
export function Returns() {
  const admin = session()?.role === "Admin";
  const [status, setStatus] = useState<ReturnStatus | "">("REQUESTED");
  const [extra, setExtra] = useState<Return[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  // What this screen changed, by return id: the answer of the call, shown until the next refresh.
  const [changed, setChanged] = useState<Record<string, Return>>({});
  const queue = useAsync(async () => {
    const page = await api<Page<Return>>("/returns", { query: { status, limit: 50 } });
    setExtra([]);
    setChanged({});
    setCursor(page.nextCursor ?? null);
    return page;
  }, [status]);
  const items = [...(queue.data?.items ?? []), ...extra].map((r) => changed[r.returnId] ?? r);
  const names = useProductNames(items.flatMap((r) => r.items.map((l) => l.productId)));
  const more = async (next: string) => {
    const page = await api<Page<Return>>("/returns", { query: { status, limit: 50, cursor: next } });
    setExtra([...extra, ...page.items]);
    setCursor(page.nextCursor ?? null);
  };

  return (
    <>
      <h1 tabIndex={-1}>Returns</h1>
      <p>
        Customers ask to send delivered items back. Approve or reject each request{admin ? "; receive approved returns when the parcel arrives (the refund follows)" : ""}.
      </p>
      <StatusFilter id="return-status" statuses={RETURN_STATUSES} value={status} onChange={setStatus} onRefresh={queue.reload} />
      <ErrorBox error={queue.error} />
      {queue.loading && !items.length && <Loading />}
      {!queue.loading && !items.length && <p>No returns {status ? `with status ${status}` : "yet"}.</p>}
      <ul class="queue">
        {items.map((r) => (
          <li key={r.returnId} class="card" data-return-id={r.returnId}>
            <h2 class="h3">
              Return #{r.returnId.slice(-8)} · {money(r.refundCents, r.currency)} <ReturnBadge status={r.status} />
            </h2>
            <p class="muted">
              {when(r.createdAt)}
              {r.orderId && (
                <>
                  {" "}
                  · <a href={`/orders/${r.orderId}`}>order #{r.orderId.slice(-8)}</a>
                </>
              )}
              {r.userId && <> · customer {r.userId.slice(-8)}</>} · {linesText(r.items, names)}
            </p>
            {r.reason && <p>Customer's reason: {r.reason}</p>}
            {r.decisionReason && r.status !== "REJECTED" && <p>Decision: {r.decisionReason}</p>}
            {r.status === "REJECTED" && <p>Rejected: {r.rejectionReason ?? r.decisionReason}</p>}
            {r.status === "REFUND_FAILED" && <p class="error">Refund failed: {r.failureReason}</p>}
            {r.dueAt && <p class="muted">Awaited until {when(r.dueAt)}</p>}
            <ReturnActions entry={r} admin={admin} onDone={(next) => setChanged({ ...changed, [next.returnId]: next })} />
          </li>
        ))}
      </ul>
      <LoadMore cursor={cursor} onMore={(next) => void more(next)} />
    </>
  );
}

function ReturnActions({ entry, admin, onDone }: { entry: Return; admin: boolean; onDone: (r: Return) => void }) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const call = async (action: "approve" | "reject" | "receive") => {
    setError(null);
    if (action !== "receive" && !reason.trim()) {
      setError(new Error("Give a reason: the customer is told, and it goes into the audit log."));
      return;
    }
    setBusy(true);
    try {
      const body = action === "receive" ? undefined : { reason: reason.trim() };
      onDone(await api<Return>(`/returns/${encodeURIComponent(entry.returnId)}/${action}`, { method: "POST", body }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const id = `return-reason-${entry.returnId}`;
  if (entry.status === "REQUESTED") {
    return (
      <div class="stack">
        <label for={id}>Reason</label>
        <input id={id} value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
        <div class="row">
          <button type="button" disabled={busy} onClick={() => void call("approve")}>
            Approve
          </button>
          <button type="button" class="danger" disabled={busy} onClick={() => void call("reject")}>
            Reject
          </button>
        </div>
        <ErrorBox error={error} />
      </div>
    );
  }
  if (entry.status === "APPROVED" && admin) {
    return (
      <div class="stack">
        <div class="row">
          <button type="button" disabled={busy} onClick={() => void call("receive")}>
            Receive
          </button>
          <span class="muted">when the parcel is at the warehouse: the items go back on sale and the refund is issued</span>
        </div>
        <ErrorBox error={error} />
      </div>
    );
  }
  return null;
}

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;

/** Every day from `from` to `to` (inclusive, never past today), with the report's figures or
 * zeros: a time series shows the quiet days too. */
export function everyDay(from: string, to: string, groups: SalesReport["groups"]): DayFigures[] {
  const known = new Map(groups.map((g) => [g.key, g]));
  const last = [to, isoDay(0)].sort()[0];
  const days: DayFigures[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${last}T00:00:00Z`) && days.length < 1000; t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    const found = known.get(day);
    days.push({ day, revenueCents: found?.revenueCents ?? 0, orders: found?.orders ?? 0 });
  }
  return days;
}

export function Reports() {
  const [from, setFrom] = useState(isoDay(-29));
  const [to, setTo] = useState(isoDay(1));
  const [groupBy, setGroupBy] = useState<"day" | "product">("day");
  const [range, setRange] = useState({ from, to, groupBy });
  const sales = useAsync(() => api<SalesReport>("/reports/sales", { query: range }), [range]);
  // The time series needs the days: the same report when grouped by day, else one more call.
  const daily = useAsync(
    () => (range.groupBy === "day" ? Promise.resolve(undefined) : api<SalesReport>("/reports/sales", { query: { ...range, groupBy: "day" } })),
    [range],
  );
  const funnel = useAsync(() => api<Funnel>("/reports/funnel", { query: { from: range.from, to: range.to } }), [range]);
  const report = sales.data;
  const currency = report?.currency ?? "USD";
  const dayGroups = range.groupBy === "day" ? report?.groups : daily.data?.groups;
  const byProduct = range.groupBy === "product" ? (report?.groups ?? []) : [];
  const productLabel = (g: SalesReport["groups"][number]) => g.name ?? `product ${g.key}`;

  const download = async () => {
    const csv = await api<string>("/reports/sales", { query: { ...range, format: "csv" }, raw: true, headers: { accept: "text/csv" } });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.download = `sales-${range.groupBy}-${range.from}-${range.to}.csv`;
    link.click();
    URL.revokeObjectURL(link.href);
  };

  return (
    <>
      <h1 tabIndex={-1}>Reports</h1>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setRange({ from, to, groupBy });
        }}
      >
        <label for="from">From</label>
        <input id="from" type="date" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        <label for="to">To</label>
        <input id="to" type="date" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        <label for="group">Group by</label>
        <select id="group" value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value as "day" | "product")}>
          <option value="day">Day</option>
          <option value="product">Product</option>
        </select>
        <button type="submit">Show</button>
        <button type="button" class="secondary" onClick={() => void download().catch(() => undefined)}>
          Download CSV
        </button>
      </form>
      <ErrorBox error={sales.error || daily.error || funnel.error} />
      {!report && sales.loading && <Loading what="Loading the report" />}
      {report && (
        <>
          <dl class="kpis">
            <div>
              <dt>Revenue (confirmed)</dt>
              <dd data-testid="revenue">{money(report.revenueCents, currency)}</dd>
            </div>
            {report.refundsCents !== undefined && (
              <div>
                <dt>Refunds</dt>
                <dd data-testid="refunds">{money(report.refundsCents, currency)}</dd>
              </div>
            )}
            {report.netRevenueCents !== undefined && (
              <div>
                <dt>Net revenue</dt>
                <dd data-testid="net-revenue">{money(report.netRevenueCents, currency)}</dd>
              </div>
            )}
            <div>
              <dt>Average order</dt>
              <dd>{money(report.averageOrderValueCents, currency)}</dd>
            </div>
            <div>
              <dt>Payment failures</dt>
              <dd>{pct(report.paymentFailureRate)}</dd>
            </div>
            <div>
              <dt>Partial fulfilment</dt>
              <dd>{pct(report.partialFulfillmentRate)}</dd>
            </div>
          </dl>
          <Section title="Revenue and orders per day">
            {dayGroups ? (
              <TimeSeriesChart
                title="Revenue and orders per day"
                days={everyDay(range.from, range.to, dayGroups)}
                format={(n) => money(n, currency)}
              />
            ) : (
              <Loading what="Loading the days" />
            )}
          </Section>
          <div class="columns">
            <Section title="Orders by status">
              <BarChart
                title="Orders by status"
                data={Object.entries(report.ordersByStatus).map(([label, value]) => ({ label, value }))}
              />
            </Section>
            {range.groupBy === "product" && (
              <Section title="Revenue by product">
                <BarChart
                  title="Revenue by product"
                  data={byProduct.map((g) => ({ label: productLabel(g), value: g.revenueCents }))}
                  format={(n) => money(n, currency)}
                />
              </Section>
            )}
          </div>
          {range.groupBy === "product" && (
            <Section title="Sales by product">
              {byProduct.length ? (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Product</th>
                      <th scope="col">Orders</th>
                      <th scope="col">Revenue</th>
                      <th scope="col">Refunds</th>
                      <th scope="col">Net</th>
                    </tr>
                  </thead>
                  <tbody>
                    {byProduct.map((g) => (
                      <tr key={g.key}>
                        <th scope="row" title={g.key}>
                          {productLabel(g)}
                        </th>
                        <td>{g.orders}</td>
                        <td>{money(g.revenueCents, currency)}</td>
                        <td>{money(g.refundsCents ?? 0, currency)}</td>
                        <td>{money(g.netRevenueCents ?? g.revenueCents, currency)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p class="muted">No confirmed sales in this window.</p>
              )}
            </Section>
          )}
          <Section title="Top products">
            {report.topProducts.length ? (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Product</th>
                    <th scope="col">Units</th>
                    <th scope="col">Revenue</th>
                  </tr>
                </thead>
                <tbody>
                  {report.topProducts.map((p) => (
                    <tr key={p.productId}>
                      <th scope="row">{p.name}</th>
                      <td>{p.quantity}</td>
                      <td>{money(p.revenueCents, currency)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p class="muted">No confirmed sales in this window.</p>
            )}
          </Section>
        </>
      )}
      {funnel.data && (
        <Section title="Customer funnel">
          <BarChart
            title="Customer funnel"
            data={[
              { label: "Registered", value: funnel.data.registered },
              { label: "Profile complete", value: funnel.data.profileComplete },
              { label: "First order", value: funnel.data.firstOrder },
              { label: "Repeat order", value: funnel.data.repeatOrder },
            ]}
          />
        </Section>
      )}
      <button
        type="button"
        class="secondary"
        onClick={() => {
          sales.reload();
          daily.reload();
          funnel.reload();
        }}
      >
        Refresh
      </button>
    </>
  );
}
