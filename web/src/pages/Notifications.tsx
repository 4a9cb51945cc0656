// The in-app inbox (and what went out by email, SMS or push, with its delivery status).
import { api, session, when, type Notification, type Page } from "../api";
import { ErrorBox, Loading, useAsync } from "../ui";

// What each kind is about, at a glance (the title and body come from the notify service).
const KIND: Record<string, [string, string]> = {
  ORDER_PLACED: ["Order", "info"],
  ORDER_DECISION_REQUIRED: ["Your decision", "warn"],
  ORDER_CONFIRMED: ["Confirmed", "ok"],
  ORDER_REJECTED: ["Rejected", "bad"],
  ORDER_CANCELLED: ["Cancelled", "bad"],
  PAYMENT_FAILED: ["Payment", "bad"],
  APPROVAL_REQUIRED: ["Approval", "warn"],
  LOW_STOCK: ["Stock", "warn"],
  ORDER_SHIPPED: ["Shipped", "info"],
  ORDER_DELIVERED: ["Delivered", "ok"],
  RETURN_REQUESTED: ["Return", "warn"],
  RETURN_APPROVED: ["Return approved", "ok"],
  RETURN_REJECTED: ["Return rejected", "bad"],
  REFUND_ISSUED: ["Refund", "ok"],
};

const RETURN_TYPES = ["RETURN_REQUESTED", "RETURN_APPROVED", "RETURN_REJECTED", "REFUND_ISSUED"];

/** Where a notification leads: its order, or for staff the queue that acts on it. */
function links(n: Notification): { href: string; text: string }[] {
  const staff = session()?.role !== "Customer";
  const found: { href: string; text: string }[] = [];
  if (n.entityType === "order" && n.entityId) found.push({ href: `/orders/${n.entityId}`, text: "View order" });
  if (staff && (n.type === "RETURN_REQUESTED" || n.entityType === "return"))
    found.push({ href: "/manager/returns", text: "Open the returns queue" });
  if (staff && n.entityType === "shipment") found.push({ href: "/admin/shipments", text: "Open the warehouse" });
  if (!staff && !found.length && (RETURN_TYPES.includes(n.type) || n.entityType === "return" || n.entityType === "shipment"))
    found.push({ href: "/orders", text: "Your orders" });
  return found;
}

export function Notifications({ onRead }: { onRead: () => void }) {
  const inbox = useAsync(() => api<Page<Notification>>("/notifications", { query: { limit: 50 } }), []);
  const read = async (id: string) => {
    await api(`/notifications/${encodeURIComponent(id)}/read`, { method: "POST" });
    inbox.reload();
    onRead();
  };
  const items = inbox.data?.items ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Notifications</h1>
      <button type="button" class="secondary" onClick={inbox.reload}>
        Refresh
      </button>
      <ErrorBox error={inbox.error} />
      {inbox.loading && !items.length && <Loading />}
      {!inbox.loading && !items.length && <p>Nothing here yet.</p>}
      <ul class="inbox">
        {items.map((n) => {
          const unread = n.channel === "inApp" && !n.readAt;
          const kind = KIND[n.type];
          return (
            <li key={n.notificationId} class={unread ? "unread" : ""} data-type={n.type}>
              <h2 class="h3">
                {kind && <span class={`badge ${kind[1]}`}>{kind[0]}</span>} {n.title} {unread && <span class="badge info">new</span>}
              </h2>
              <p>{n.body}</p>
              <p class="muted">
                {when(n.createdAt)} · {n.channel} · {n.status}
                {links(n).map((l) => (
                  <span key={l.href}>
                    {" "}
                    · <a href={l.href}>{l.text}</a>
                  </span>
                ))}
              </p>
              {unread && (
                <button type="button" class="secondary small" onClick={() => void read(n.notificationId)}>
                  Mark as read
                </button>
              )}
            </li>
          );
        })}
      </ul>
    </>
  );
}
