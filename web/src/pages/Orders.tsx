// Orders: the list (own, or everyone's for staff), and one order live with its saga timeline.
import { useState } from "preact/hooks";
import { api, ApiError, money, session, TERMINAL, when, type Order, type OrderStatus, type Page, type Return, type TimelineEntry } from "../api";
import { Alternatives } from "./Cart";
import { cardName } from "../checkout";
import { useProfile } from "../profile";
import { ErrorBox, FulfilmentBadge, Loading, ReturnBadge, Section, StatusBadge, linesText, useAsync, useInterval } from "../ui";

const STATUSES: OrderStatus[] = [
  "PENDING",
  "AWAITING_CUSTOMER_DECISION",
  "AWAITING_APPROVAL",
  "AWAITING_PAYMENT",
  "PAYMENT_FAILED",
  "PAID",
  "CONFIRMED",
  "REJECTED",
  "CANCELLED",
];

export function OrderList({ title = "Your orders" }: { title?: string }) {
  const [status, setStatus] = useState("");
  const [extra, setExtra] = useState<Order[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const page = useAsync(async () => {
    const found = await api<Page<Order>>("/orders", { query: { status, limit: 25 } });
    setExtra([]);
    setCursor(found.nextCursor ?? null);
    return found;
  }, [status]);
  const orders = [...(page.data?.items ?? []), ...extra];
  const staff = session()?.role !== "Customer";

  const more = async () => {
    if (!cursor) return;
    const next = await api<Page<Order>>("/orders", { query: { status, limit: 25, cursor } });
    setExtra([...extra, ...next.items]);
    setCursor(next.nextCursor ?? null);
  };

  return (
    <>
      <h1 tabIndex={-1}>{title}</h1>
      <div class="row">
        <label for="status-filter">Status</label>
        <select id="status-filter" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <button type="button" class="secondary" onClick={page.reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={page.error} />
      {page.loading && !orders.length && <Loading />}
      {!page.loading && !orders.length && <p>No orders yet.</p>}
      {orders.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Placed</th>
              {staff && <th scope="col">Customer</th>}
              <th scope="col">Items</th>
              <th scope="col">Total</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {orders.map((o) => (
              <tr key={o.orderId} data-order-id={o.orderId}>
                <td>
                  <a href={`/orders/${o.orderId}`}>#{o.orderId.slice(-8)}</a>
                </td>
                <td>{when(o.createdAt)}</td>
                {staff && <td class="mono">{o.userId.slice(-8)}</td>}
                <td>{o.items.map((i) => `${i.quantity}× ${i.name}`).join(", ")}</td>
                <td>{money(o.totalCents, o.currency)}</td>
                <td>
                  <StatusBadge status={o.status} />
                  {o.fulfilment && <FulfilmentBadge status={o.fulfilment.status} />}
                  {o.flags.fraudFlag && <span class="badge bad">fraud check</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor && (
        <button type="button" class="secondary" onClick={() => void more()}>
          Load more
        </button>
      )}
    </>
  );
}

const WAITING: OrderStatus[] = ["AWAITING_CUSTOMER_DECISION", "AWAITING_APPROVAL", "PAYMENT_FAILED"];

const STEP_TEXT: Record<string, string> = {
  place: "Order placed",
  stockReserved: "Stock reserved",
  stockPartiallyReserved: "Only part of the stock was available",
  stockUnavailable: "Out of stock",
  approvalRequired: "Waiting for a manager's approval",
  approved: "Approved",
  paymentRequested: "Payment requested",
  paymentAuthorized: "Payment authorized",
  paymentFailed: "Payment failed",
  paid: "Paid",
  stockCommitted: "Stock committed",
  confirmed: "Order confirmed",
  paymentCaptured: "Payment captured",
  cancelled: "Cancelled",
  rejected: "Rejected",
  decision: "Your decision",
  cancelRequested: "Cancellation requested",
  promotionRedeemed: "Promotion applied",
  stockReleased: "Stock released",
  stockCommitFailed: "Stock could not be committed",
  paymentVoided: "Payment voided",
  paymentRefunded: "Payment refunded",
  paymentRefundFailed: "Refund failed",
  shipmentCreated: "Shipment prepared",
  shipmentDispatched: "Shipped",
  shipmentDelivered: "Delivered",
  returnRequested: "Return requested",
  returnApproved: "Return approved",
  returnRejected: "Return rejected",
  returnReceived: "Return received",
  stockReturned: "Returned items back in stock",
  returnRefunded: "Return refunded",
  returnRefundFailed: "Return refund failed",
  returnDeadline: "A return's deadline passed",
};

// After CONFIRMED the order still moves: the parcel, then any return until it is refunded.
const RETURN_OPEN: Return["status"][] = ["REQUESTED", "APPROVED", "RECEIVED"];

function afterConfirmed(order: Order): "fast" | "slow" | null {
  if (order.status !== "CONFIRMED") return null;
  const returns = order.returns ?? [];
  if (returns.some((r) => r.status === "RECEIVED")) return "fast"; // the refund is an event away
  if (order.fulfilment?.status !== "DELIVERED" || returns.some((r) => RETURN_OPEN.includes(r.status))) return "slow";
  return null;
}

export function OrderDetail({ orderId }: { orderId: string }) {
  const role = session()?.role;
  const profile = useProfile();
  const order = useAsync(() => api<Order>(`/orders/${encodeURIComponent(orderId)}`), [orderId]);
  const timeline = useAsync(
    () => api<{ items: TimelineEntry[] }>(`/orders/${encodeURIComponent(orderId)}/timeline`),
    [orderId],
  );
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [retryWith, setRetryWith] = useState("");
  const [notice, setNotice] = useState("");

  const current = order.data;
  const following = current ? afterConfirmed(current) : null;
  const live = !current || !TERMINAL.includes(current.status) || following !== null;
  // Live status: poll while the saga runs (each step is an event away), stop when it is over;
  // slower while it waits for a person (a decision, an approval, a payment retry, the warehouse,
  // a return's review).
  const waiting = current !== undefined && (WAITING.includes(current.status) || following === "slow");
  useInterval(
    () => {
      order.reload();
      timeline.reload();
    },
    waiting ? 5000 : 1000,
    live && !busy,
  );

  const act = async (path: string, body: unknown, done: string) => {
    setBusy(true);
    setError(null);
    try {
      await api(`/orders/${encodeURIComponent(orderId)}/${path}`, { body: body ?? {} });
      setNotice(done);
      order.reload();
      timeline.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (order.error && !current) {
    return (
      <>
        <h1 tabIndex={-1}>Order</h1>
        <ErrorBox error={order.error} />
      </>
    );
  }
  if (!current) return <Loading what="Loading the order" />;
  const customer = role === "Customer";
  const staff = role === "Manager" || role === "Admin";
  const fulfilled = current.items.map((i) => i.fulfilledQuantity ?? i.quantity);
  const partialTotal = current.items.reduce((sum, i, n) => sum + i.priceCents * fulfilled[n], 0);

  return (
    <>
      <h1 tabIndex={-1}>
        Order #{orderId.slice(-8)} <StatusBadge status={current.status} />
      </h1>
      <p class="sr-only" role="status" aria-live="polite">
        Order status: {current.status}
      </p>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={error} />

      {customer && current.status === "AWAITING_CUSTOMER_DECISION" && (
        <Section title="Not everything is in stock" id="decision">
          <p>We can send part of your order now:</p>
          <ul>
            {current.items.map((i) => (
              <li key={i.productId}>
                {i.name}: {i.fulfilledQuantity ?? 0} of {i.quantity}
              </li>
            ))}
          </ul>
          <p>
            The new total would be <strong>{money(partialTotal, current.currency)}</strong>.
            {current.deadline && <> Please decide before {when(current.deadline)}.</>}
          </p>
          <div class="row">
            <button type="button" disabled={busy} onClick={() => void act("decision", { accept: true }, "You accepted the partial order.")}>
              Accept partial order
            </button>
            <button
              type="button"
              class="danger"
              disabled={busy}
              onClick={() => void act("decision", { accept: false }, "You declined; the order is cancelled.")}
            >
              Cancel the order
            </button>
          </div>
        </Section>
      )}

      {customer && current.status === "PAYMENT_FAILED" && (
        <Section title="Payment failed" id="retry">
          <p>
            {current.payment?.lastError === "DECLINED"
              ? "Your card was declined."
              : "We could not reach your bank."}{" "}
            Your items are held for you: try again, with another card if you like.
          </p>
          <label for="retry-card">Card</label>
          <select id="retry-card" value={retryWith || current.payment?.paymentMethodId} onChange={(e) => setRetryWith(e.currentTarget.value)}>
            {(profile?.paymentMethods ?? []).map((m) => (
              <option key={m.paymentMethodId} value={m.paymentMethodId}>
                {m.brand ?? "Card"} ending {m.last4}
              </option>
            ))}
          </select>
          <button
            type="button"
            disabled={busy}
            onClick={() =>
              void act("payment/retry", retryWith ? { paymentMethodId: retryWith } : {}, "Trying the payment again…")
            }
          >
            Retry payment
          </button>
        </Section>
      )}

      {staff && current.status === "AWAITING_APPROVAL" && (
        <Section title="Approval" id="approval">
          <ApprovalForm orderId={orderId} onDone={() => order.reload()} />
        </Section>
      )}

      {current.status === "REJECTED" && current.rejectionReason === "OUT_OF_STOCK" && (
        <Section title="Out of stock" id="oos">
          <p>Sorry, we could not reserve your items.</p>
          {customer && (current.alternatives ?? []).length > 0 && <Alternatives ids={current.alternatives ?? []} />}
        </Section>
      )}

      <div class="columns">
        <Section title="Details">
          <table>
            <thead>
              <tr>
                <th scope="col">Item</th>
                <th scope="col">Ordered</th>
                <th scope="col">Fulfilled</th>
                <th scope="col">Price</th>
              </tr>
            </thead>
            <tbody>
              {current.items.map((i) => (
                <tr key={i.productId}>
                  <th scope="row">{i.name}</th>
                  <td>{i.quantity}</td>
                  <td>{i.fulfilledQuantity ?? "…"}</td>
                  <td>{money(i.priceCents, current.currency)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <dl class="summary">
            {current.discountCents > 0 && (
              <>
                <dt>Discount</dt>
                <dd>−{money(current.discountCents, current.currency)}</dd>
              </>
            )}
            <dt>Total</dt>
            <dd data-testid="order-total">{money(current.totalCents, current.currency)}</dd>
            {current.address && (
              <>
                <dt>Ship to</dt>
                <dd>
                  {current.address.line1}, {current.address.city}
                </dd>
              </>
            )}
            {(current.refundedCents ?? 0) > 0 && (
              <>
                <dt>Refunded</dt>
                <dd data-testid="refunded">{money(current.refundedCents ?? 0, current.currency)}</dd>
              </>
            )}
            {current.payment && (
              <>
                <dt>Payment</dt>
                <dd>
                  {customer ? cardName(profile, current.payment.paymentMethodId) : current.payment.paymentMethodId.slice(-8)} ·{" "}
                  {current.payment.status} ({current.payment.attempts} attempt{current.payment.attempts === 1 ? "" : "s"})
                </dd>
              </>
            )}
            {current.rejectionReason && (
              <>
                <dt>Rejected because</dt>
                <dd>{current.rejectionReason}</dd>
              </>
            )}
            {current.cancelReason && (
              <>
                <dt>Cancelled because</dt>
                <dd>{current.cancelReason}</dd>
              </>
            )}
            {current.approvalReason && (
              <>
                <dt>Needs approval</dt>
                <dd>{current.approvalReason === "fraud" ? "fraud check" : "high value"}</dd>
              </>
            )}
          </dl>
          {(customer || role === "Admin") &&
            ["PENDING", "AWAITING_CUSTOMER_DECISION", "AWAITING_APPROVAL", "AWAITING_PAYMENT", "PAYMENT_FAILED"].includes(current.status) && (
              <button type="button" class="danger" disabled={busy} onClick={() => void act("cancel", undefined, "The order is cancelled.")}>
                Cancel order
              </button>
            )}
        </Section>
        <Section title="Timeline">
          <ol class="timeline" aria-live="polite">
            {(timeline.data?.items ?? []).map((t, n) => (
              <li key={`${t.eventId ?? n}-${t.step}`} data-step={t.step}>
                <span class="step">{STEP_TEXT[t.step] ?? t.step}</span>{" "}
                <span class="muted">
                  {t.service} · {new Date(t.at).toLocaleTimeString("en-US")}
                </span>
              </li>
            ))}
          </ol>
          {live && <p class="muted">Updating live…</p>}
        </Section>
      </div>
      {current.status === "CONFIRMED" && (
        <div class="columns">
          <Delivery order={current} />
          {((current.returns ?? []).length > 0 || current.fulfilment?.status === "DELIVERED") && (
            <Section title="Returns">
              <ReturnList order={current} />
              {customer && current.fulfilment?.status === "DELIVERED" && (
                <ReturnForm
                  order={current}
                  onDone={(text) => {
                    setNotice(text);
                    order.reload();
                    timeline.reload();
                  }}
                  onStale={order.reload}
                />
              )}
            </Section>
          )}
        </div>
      )}
    </>
  );
}

function Delivery({ order }: { order: Order }) {
  const f = order.fulfilment;
  return (
    <Section title="Delivery">
      {!f ? (
        <p class="muted">We are preparing your shipment.</p>
      ) : (
        <dl class="summary" data-testid="fulfilment">
          <dt>Status</dt>
          <dd>
            <FulfilmentBadge status={f.status} />
          </dd>
          {f.carrier && (
            <>
              <dt>Carrier</dt>
              <dd>{f.carrier}</dd>
            </>
          )}
          {f.trackingNumber && (
            <>
              <dt>Tracking number</dt>
              <dd class="mono" data-testid="tracking-number">
                {f.trackingNumber}
              </dd>
            </>
          )}
          {f.shippedAt && (
            <>
              <dt>Shipped</dt>
              <dd>{when(f.shippedAt)}</dd>
            </>
          )}
          {f.deliveredAt && (
            <>
              <dt>Delivered</dt>
              <dd>{when(f.deliveredAt)}</dd>
            </>
          )}
        </dl>
      )}
    </Section>
  );
}

/** What a person should know about a return's state: why it was refused or failed, until when
 * the next step is awaited. */
export function returnNote(r: Return): string {
  if (r.status === "REJECTED") return r.rejectionReason === "NOT_RECEIVED" ? "The items never arrived in time." : `Refused: ${r.rejectionReason ?? r.decisionReason ?? ""}`;
  if (r.status === "REFUND_FAILED") return `The refund did not go through (${r.failureReason ?? "unknown reason"}); our staff can see it.`;
  if (r.status === "APPROVED") return r.dueAt ? `Send the items back by ${when(r.dueAt)}.` : "Send the items back.";
  if (r.status === "RECEIVED") return "Received: the refund is on its way.";
  return "";
}

function ReturnList({ order }: { order: Order }) {
  const returns = order.returns ?? [];
  const names = Object.fromEntries(order.items.map((i) => [i.productId, i.name]));
  if (!returns.length) return <p class="muted">No returns for this order.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">Return</th>
          <th scope="col">Items</th>
          <th scope="col">Refund</th>
          <th scope="col">Status</th>
        </tr>
      </thead>
      <tbody>
        {returns.map((r) => (
          <tr key={r.returnId} data-return-id={r.returnId}>
            <td class="mono">#{r.returnId.slice(-8)}</td>
            <td>{linesText(r.items, names)}</td>
            <td>{money(r.refundCents, order.currency)}</td>
            <td>
              <ReturnBadge status={r.status} />
              {returnNote(r) && <div class="muted">{returnNote(r)}</div>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** What each line can still go back: delivered, less what earlier returns claimed (a rejected
 * return claims nothing). The service checks it again (422 RETURN_QUANTITY_EXCEEDED). */
export function returnable(order: Order): Record<string, number> {
  const left: Record<string, number> = {};
  for (const i of order.items) left[i.productId] = (left[i.productId] ?? 0) + (i.fulfilledQuantity ?? i.quantity);
  for (const r of order.returns ?? []) {
    if (r.status === "REJECTED") continue;
    for (const l of r.items) left[l.productId] = (left[l.productId] ?? 0) - l.quantity;
  }
  return left;
}

const RETURN_ERRORS: Record<string, string> = {
  NOT_DELIVERED: "This order has not been delivered yet: you can return items once they have arrived.",
  RETURN_WINDOW_CLOSED: "The time to return items from this order is over.",
  RETURN_QUANTITY_EXCEEDED: "That is more than is left to return on a line (delivered, less earlier returns).",
};

function ReturnForm({ order, onDone, onStale }: { order: Order; onDone: (notice: string) => void; onStale: () => void }) {
  const [quantities, setQuantities] = useState<Record<string, string>>({});
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const left = returnable(order);
  const lines = order.items.filter((i) => (left[i.productId] ?? 0) > 0);
  if (!lines.length) return <p class="muted">Everything from this order has been returned.</p>;

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const items = lines
      .map((i) => ({ productId: i.productId, quantity: Number(quantities[i.productId] || 0) }))
      .filter((l) => l.quantity !== 0);
    const wrong = items.find((l) => !Number.isInteger(l.quantity) || l.quantity < 0 || l.quantity > (left[l.productId] ?? 0));
    if (!items.length) return setError(new Error("Choose how many of which items to return."));
    if (wrong) {
      const name = order.items.find((i) => i.productId === wrong.productId)?.name ?? "a line";
      return setError(new Error(`You can return between 0 and ${left[wrong.productId] ?? 0} of ${name}.`));
    }
    if (!reason.trim()) return setError(new Error("Tell us why you are returning them."));
    setBusy(true);
    try {
      const created = await api<Return>(`/orders/${encodeURIComponent(order.orderId)}/returns`, {
        body: { items, reason: reason.trim() },
      });
      setQuantities({});
      setReason("");
      onDone(`Return requested: ${money(created.refundCents, order.currency)} will be refunded once we receive the items.`);
    } catch (e) {
      setError(e);
      // A refusal about the order's state or what is left: what this page shows is behind.
      if (e instanceof ApiError && (e.status === 409 || e.code === "RETURN_QUANTITY_EXCEEDED")) onStale();
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="stack" noValidate onSubmit={(e) => void submit(e)} aria-labelledby="return-items-h">
      <h3 id="return-items-h">Return items</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Item</th>
            <th scope="col">Can return</th>
            <th scope="col">Return</th>
          </tr>
        </thead>
        <tbody>
          {lines.map((i) => (
            <tr key={i.productId}>
              <th scope="row">{i.name}</th>
              <td>{left[i.productId]}</td>
              <td>
                <label for={`return-${i.productId}`} class="sr-only">
                  Quantity of {i.name} to return
                </label>
                <input
                  id={`return-${i.productId}`}
                  type="number"
                  class="qty"
                  min={0}
                  max={left[i.productId]}
                  step={1}
                  placeholder="0"
                  value={quantities[i.productId] ?? ""}
                  onInput={(e) => setQuantities({ ...quantities, [i.productId]: e.currentTarget.value })}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <label for="return-reason">Reason for the return</label>
      <input id="return-reason" value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
      <ErrorBox error={error} explain={RETURN_ERRORS} />
      <div class="row">
        <button type="submit" disabled={busy}>
          Request return
        </button>
      </div>
    </form>
  );
}

export function ApprovalForm({ orderId, onDone }: { orderId: string; onDone: (status: string) => void }) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const decide = async (action: "approve" | "reject") => {
    setError(null);
    if (!reason.trim()) {
      setError(new Error("Give a reason: it goes into the audit log."));
      return;
    }
    setBusy(true);
    try {
      const order = await api<Order>(`/orders/${encodeURIComponent(orderId)}/${action}`, { body: { reason: reason.trim() } });
      onDone(order.status);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const id = `reason-${orderId}`;
  return (
    <div class="stack">
      <label for={id}>Reason</label>
      <input id={id} value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
      <div class="row">
        <button type="button" disabled={busy} onClick={() => void decide("approve")}>
          Approve
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => void decide("reject")}>
          Reject
        </button>
      </div>
      <ErrorBox error={error} />
    </div>
  );
}
