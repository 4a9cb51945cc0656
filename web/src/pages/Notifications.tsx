// The in-app inbox (and what went out by email, SMS or push, with its delivery status).
import { api, when, type Notification, type Page } from "../api";
import { ErrorBox, Loading, useAsync } from "../ui";

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
          return (
            <li key={n.notificationId} class={unread ? "unread" : ""} data-type={n.type}>
              <h2 class="h3">
                {n.title} {unread && <span class="badge info">new</span>}
              </h2>
              <p>{n.body}</p>
              <p class="muted">
                {when(n.createdAt)} · {n.channel} · {n.status}
                {n.entityType === "order" && n.entityId && (
                  <>
                    {" "}
                    · <a href={`/orders/${n.entityId}`}>View order</a>
                  </>
                )}
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
