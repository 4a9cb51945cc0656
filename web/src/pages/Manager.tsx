// Manager: the approval queue, and the sales and funnel reports with charts.
import { useState } from "preact/hooks";
import { api, money, when, type Funnel, type Order, type Page, type SalesReport } from "../api";
import { ApprovalForm } from "./Orders";
import { BarChart, ErrorBox, Loading, Section, useAsync } from "../ui";

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

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;

export function Reports() {
  const [from, setFrom] = useState(isoDay(-29));
  const [to, setTo] = useState(isoDay(1));
  const [groupBy, setGroupBy] = useState<"day" | "product">("day");
  const [range, setRange] = useState({ from, to, groupBy });
  const sales = useAsync(() => api<SalesReport>("/reports/sales", { query: range }), [range]);
  const funnel = useAsync(() => api<Funnel>("/reports/funnel", { query: { from: range.from, to: range.to } }), [range]);
  const report = sales.data;
  const currency = report?.currency ?? "USD";

  const download = async () => {
    const csv = await api<string>("/reports/sales", { query: { ...range, format: "csv" }, raw: true, headers: { accept: "text/csv" } });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.download = `sales-${range.from}-${range.to}.csv`;
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
      <ErrorBox error={sales.error || funnel.error} />
      {!report && sales.loading && <Loading what="Loading the report" />}
      {report && (
        <>
          <dl class="kpis">
            <div>
              <dt>Revenue (confirmed)</dt>
              <dd data-testid="revenue">{money(report.revenueCents, currency)}</dd>
            </div>
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
          <div class="columns">
            <Section title="Orders by status">
              <BarChart
                title="Orders by status"
                data={Object.entries(report.ordersByStatus).map(([label, value]) => ({ label, value }))}
              />
            </Section>
            <Section title={groupBy === "day" ? "Revenue by day" : "Revenue by product"}>
              <BarChart
                title={groupBy === "day" ? "Revenue by day" : "Revenue by product"}
                data={report.groups.map((g) => ({ label: g.key, value: g.revenueCents }))}
                format={(n) => money(n, currency)}
              />
            </Section>
          </div>
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
          funnel.reload();
        }}
      >
        Refresh
      </button>
    </>
  );
}
