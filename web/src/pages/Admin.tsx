// Admin: users and roles, products and stock, the warehouse queue, the audit log, dead letters
// with redrive.
// (`type={… as "text"}`: Preact 11 types each input type separately; a computed one needs the cast.)
import { useState } from "preact/hooks";
import {
  api,
  money,
  session,
  when,
  type AuditEntry,
  type DeadLetters,
  type FulfilmentStatus,
  type Page,
  type Product,
  type Profile,
  type Role,
  type Shipment,
} from "../api";
import { ErrorBox, FulfilmentBadge, LoadMore, Loading, StatusFilter, Section, StockBadge, linesText, useAsync, useProductNames } from "../ui";

const ROLES: Role[] = ["Customer", "Manager", "Admin"];

function useAction(): [unknown, string, (body: () => Promise<unknown>, done: string) => Promise<void>] {
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");
  const run = async (body: () => Promise<unknown>, done: string) => {
    setError(null);
    setNotice("");
    try {
      await body();
      setNotice(done);
    } catch (e) {
      setError(e);
    }
  };
  return [error, notice, run];
}

function Notice({ text }: { text: string }) {
  return text ? (
    <p class="notice" role="status">
      {text}
    </p>
  ) : null;
}

export function Users() {
  const [q, setQ] = useState("");
  const [role, setRole] = useState("");
  const [filter, setFilter] = useState({ q: "", role: "" });
  const users = useAsync(() => api<Page<Profile>>("/users", { query: { ...filter, limit: 50 } }), [filter]);
  const [error, notice, run] = useAction();
  const [draft, setDraft] = useState({ username: "", email: "", password: "", role: "Manager" as Role });

  const change = (user: Profile, body: Record<string, unknown>, done: string) =>
    run(async () => {
      await api(`/users/${user.userId}`, { method: "PATCH", body });
      users.reload();
    }, done);

  return (
    <>
      <h1 tabIndex={-1}>Users</h1>
      <form
        role="search"
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ q: q.trim(), role });
        }}
      >
        <label for="user-q">Search</label>
        <input id="user-q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <label for="user-role">Role</label>
        <select id="user-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          <option value="">Any</option>
          {ROLES.map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
        <button type="submit">Filter</button>
      </form>
      <Notice text={notice} />
      <ErrorBox error={error || users.error} />
      {users.loading && !users.data && <Loading />}
      <table>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">Profile</th>
            <th scope="col">Last active</th>
            <th scope="col">Account</th>
          </tr>
        </thead>
        <tbody>
          {(users.data?.items ?? []).map((u) => (
            <tr key={u.userId} data-user-id={u.userId}>
              <th scope="row">{u.username}</th>
              <td>{u.email}</td>
              <td>
                <label for={`role-${u.userId}`} class="sr-only">
                  Role of {u.username}
                </label>
                <select
                  id={`role-${u.userId}`}
                  value={u.role}
                  onChange={(e) => void change(u, { role: e.currentTarget.value }, `${u.username} is now ${e.currentTarget.value}.`)}
                >
                  {ROLES.map((r) => (
                    <option key={r}>{r}</option>
                  ))}
                </select>
              </td>
              <td>{u.flags.isProfileComplete ? "complete" : "incomplete"}</td>
              <td>{when(u.flags.lastActiveAt)}</td>
              <td>
                <button
                  type="button"
                  class="secondary small"
                  onClick={() => void change(u, { disabled: !u.disabled }, `${u.username} ${u.disabled ? "enabled" : "disabled"}.`)}
                >
                  {u.disabled ? "Enable" : "Disable"}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Section title="Create a user">
        <form
          class="grid2"
          onSubmit={(e) => {
            e.preventDefault();
            void run(async () => {
              await api("/users", { body: draft });
              setDraft({ username: "", email: "", password: "", role: "Manager" });
              users.reload();
            }, `${draft.username} created.`);
          }}
        >
          {(["username", "email", "password"] as const).map((f) => (
            <div class="field" key={f}>
              <label for={`new-${f}`}>{f[0].toUpperCase() + f.slice(1)}</label>
              <input
                id={`new-${f}`}
                type={(f === "password" ? "password" : f === "email" ? "email" : "text") as "text"}
                autoComplete={f === "password" ? "new-password" : "off"}
                required
                value={draft[f]}
                onInput={(e) => setDraft({ ...draft, [f]: e.currentTarget.value })}
              />
            </div>
          ))}
          <div class="field">
            <label for="new-role">Role</label>
            <select id="new-role" value={draft.role} onChange={(e) => setDraft({ ...draft, role: e.currentTarget.value as Role })}>
              {ROLES.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </div>
          <button type="submit">Create user</button>
        </form>
      </Section>
    </>
  );
}

export function Products() {
  const [q, setQ] = useState("");
  const [applied, setApplied] = useState("");
  const products = useAsync(() => api<Page<Product>>("/products", { query: { q: applied, limit: 100 } }), [applied]);
  const [error, notice, run] = useAction();
  const [draft, setDraft] = useState({ name: "", description: "", category: "", price: "", stock: "10" });
  const [adjust, setAdjust] = useState<Record<string, { delta: string; reason: string }>>({});

  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await api("/products", {
        body: {
          name: draft.name.trim(),
          description: draft.description.trim(),
          category: draft.category.trim(),
          priceCents: Math.round(Number(draft.price) * 100),
          stockCount: Number(draft.stock),
        },
      });
      setDraft({ name: "", description: "", category: "", price: "", stock: "10" });
      products.reload();
    }, `${draft.name} created.`);
  };

  return (
    <>
      <h1 tabIndex={-1}>Products and stock</h1>
      <form
        role="search"
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(q.trim());
        }}
      >
        <label for="product-q">Search</label>
        <input id="product-q" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <button type="submit">Search</button>
      </form>
      <Notice text={notice} />
      <ErrorBox error={error || products.error} />
      {products.loading && !products.data && <Loading />}
      <table>
        <thead>
          <tr>
            <th scope="col">Product</th>
            <th scope="col">Category</th>
            <th scope="col">Price</th>
            <th scope="col">Available</th>
            <th scope="col">Adjust stock</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {(products.data?.items ?? []).map((p) => {
            const a = adjust[p.productId] ?? { delta: "", reason: "" };
            return (
              <tr key={p.productId} data-product-id={p.productId}>
                <th scope="row">{p.name}</th>
                <td>{p.category}</td>
                <td>{money(p.priceCents, p.currency)}</td>
                <td>
                  {p.stockAvailable} <StockBadge product={p} />
                </td>
                <td>
                  <form
                    class="row"
                    onSubmit={(e) => {
                      e.preventDefault();
                      void run(async () => {
                        await api(`/products/${p.productId}/stock`, { body: { delta: Number(a.delta), reason: a.reason.trim() } });
                        setAdjust({ ...adjust, [p.productId]: { delta: "", reason: "" } });
                        products.reload();
                      }, `Stock of ${p.name} adjusted.`);
                    }}
                  >
                    <label for={`delta-${p.productId}`} class="sr-only">
                      Change in stock of {p.name}
                    </label>
                    <input
                      id={`delta-${p.productId}`}
                      type="number"
                      class="qty"
                      required
                      placeholder="±"
                      value={a.delta}
                      onInput={(e) => setAdjust({ ...adjust, [p.productId]: { ...a, delta: e.currentTarget.value } })}
                    />
                    <label for={`reason-${p.productId}`} class="sr-only">
                      Reason for the change of {p.name}
                    </label>
                    <input
                      id={`reason-${p.productId}`}
                      required
                      placeholder="reason"
                      value={a.reason}
                      onInput={(e) => setAdjust({ ...adjust, [p.productId]: { ...a, reason: e.currentTarget.value } })}
                    />
                    <button type="submit" class="secondary small">
                      Apply
                    </button>
                  </form>
                </td>
                <td>
                  <button
                    type="button"
                    class="danger small"
                    aria-label={`Delete ${p.name}`}
                    onClick={() =>
                      confirm(`Delete ${p.name}?`) &&
                      void run(async () => {
                        await api(`/products/${p.productId}`, { method: "DELETE" });
                        products.reload();
                      }, `${p.name} deleted.`)
                    }
                  >
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <Section title="Add a product">
        <form class="grid2" onSubmit={create}>
          {(
            [
              ["name", "Name", "text"],
              ["description", "Description", "text"],
              ["category", "Category", "text"],
              ["price", "Price (USD)", "number"],
              ["stock", "Initial stock", "number"],
            ] as const
          ).map(([f, label, type]) => (
            <div class="field" key={f}>
              <label for={`product-${f}`}>{label}</label>
              <input
                id={`product-${f}`}
                type={type as "text"}
                step={f === "price" ? "0.01" : "1"}
                min={type === "number" ? 0 : undefined}
                required={f !== "description"}
                value={draft[f]}
                onInput={(e) => setDraft({ ...draft, [f]: e.currentTarget.value })}
              />
            </div>
          ))}
          <button type="submit">Add product</button>
        </form>
      </Section>
    </>
  );
}

const SHIPMENT_STATUSES: FulfilmentStatus[] = ["PENDING", "SHIPPED", "DELIVERED"];

/** The warehouse queue: one shipment per confirmed order. An Admin ships it (with the carrier and
 * tracking number, or the sandbox carrier's) and marks it delivered; a Manager can look. */
export function Warehouse() {
  const admin = session()?.role === "Admin";
  const [status, setStatus] = useState<FulfilmentStatus | "">("PENDING");
  const [extra, setExtra] = useState<Shipment[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  // Shipments this screen changed: the call's answer, shown in place until the next refresh.
  const [changed, setChanged] = useState<Record<string, Shipment>>({});
  const [forms, setForms] = useState<Record<string, { carrier: string; trackingNumber: string }>>({});
  const [error, notice, run] = useAction();
  const queue = useAsync(async () => {
    const page = await api<Page<Shipment>>("/shipments", { query: { status, limit: 50 } });
    setExtra([]);
    setChanged({});
    setCursor(page.nextCursor ?? null);
    return page;
  }, [status]);
  const items = [...(queue.data?.items ?? []), ...extra].map((s) => changed[s.shipmentId] ?? s);
  const names = useProductNames(items.flatMap((s) => s.lines.map((l) => l.productId)));
  const more = async (next: string) => {
    const page = await api<Page<Shipment>>("/shipments", { query: { status, limit: 50, cursor: next } });
    setExtra([...extra, ...page.items]);
    setCursor(page.nextCursor ?? null);
  };
  const act = (shipment: Shipment, action: "ship" | "deliver", body: Record<string, string>, done: string) =>
    run(async () => {
      const next = await api<Shipment>(`/shipments/${encodeURIComponent(shipment.shipmentId)}/${action}`, { method: "POST", body });
      setChanged({ ...changed, [next.shipmentId]: next });
    }, done);

  return (
    <>
      <h1 tabIndex={-1}>Warehouse</h1>
      <StatusFilter id="shipment-status" statuses={SHIPMENT_STATUSES} value={status} onChange={setStatus} onRefresh={queue.reload} />
      <Notice text={notice} />
      <ErrorBox error={error || queue.error} />
      {queue.loading && !items.length && <Loading />}
      {!queue.loading && !items.length && <p>No shipments {status ? `with status ${status}` : "yet"}.</p>}
      {items.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Items</th>
              <th scope="col">Ship to</th>
              <th scope="col">Status</th>
              <th scope="col">Tracking</th>
              {admin && <th scope="col">Action</th>}
            </tr>
          </thead>
          <tbody>
            {items.map((s) => {
              const f = forms[s.shipmentId] ?? { carrier: "", trackingNumber: "" };
              const order = `#${s.orderId.slice(-8)}`;
              const ship = (e: Event) => {
                e.preventDefault();
                const body: Record<string, string> = {};
                if (f.carrier.trim()) body.carrier = f.carrier.trim();
                if (f.trackingNumber.trim()) body.trackingNumber = f.trackingNumber.trim();
                void act(s, "ship", body, `Order ${order} shipped.`);
              };
              return (
                <tr key={s.shipmentId} data-shipment-id={s.shipmentId} data-order-id={s.orderId}>
                  <td>
                    <a href={`/orders/${s.orderId}`}>{order}</a>
                    <div class="muted">{when(s.createdAt)}</div>
                  </td>
                  <td>{linesText(s.lines, names)}</td>
                  <td>{s.address ? [s.address.line1, s.address.city, s.address.country].filter(Boolean).join(", ") : ""}</td>
                  <td>
                    <FulfilmentBadge status={s.status} />
                    {s.shippedAt && <div class="muted">shipped {when(s.shippedAt)}</div>}
                    {s.deliveredAt && <div class="muted">delivered {when(s.deliveredAt)}</div>}
                  </td>
                  <td>
                    {s.carrier} <span class="mono">{s.trackingNumber}</span>
                  </td>
                  {admin && (
                    <td>
                      {s.status === "PENDING" && (
                        <form class="row" onSubmit={ship}>
                          <label for={`carrier-${s.shipmentId}`} class="sr-only">
                            Carrier for order {order}
                          </label>
                          <input
                            id={`carrier-${s.shipmentId}`}
                            placeholder="carrier (empty: the sandbox carrier)"
                            maxLength={100}
                            value={f.carrier}
                            onInput={(e) => setForms({ ...forms, [s.shipmentId]: { ...f, carrier: e.currentTarget.value } })}
                          />
                          <label for={`tracking-${s.shipmentId}`} class="sr-only">
                            Tracking number for order {order}
                          </label>
                          <input
                            id={`tracking-${s.shipmentId}`}
                            placeholder="tracking number (the sandbox issues one)"
                            maxLength={100}
                            value={f.trackingNumber}
                            onInput={(e) => setForms({ ...forms, [s.shipmentId]: { ...f, trackingNumber: e.currentTarget.value } })}
                          />
                          <button type="submit" class="small">
                            Ship
                          </button>
                        </form>
                      )}
                      {s.status === "SHIPPED" && (
                        <button type="button" class="small" onClick={() => void act(s, "deliver", {}, `Order ${order} delivered.`)}>
                          Deliver
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <LoadMore cursor={cursor} onMore={(next) => void more(next)} />
    </>
  );
}

export function Audit() {
  const empty = { actorId: "", entityId: "", action: "", from: "", to: "" };
  const [draft, setDraft] = useState(empty);
  const [filter, setFilter] = useState(empty);
  const [extra, setExtra] = useState<AuditEntry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const log = useAsync(async () => {
    const page = await api<Page<AuditEntry>>("/audit", { query: { ...filter, limit: 50 } });
    setExtra([]);
    setCursor(page.nextCursor ?? null);
    return page;
  }, [filter]);
  const entries = [...(log.data?.items ?? []), ...extra];
  const more = async () => {
    if (!cursor) return;
    const page = await api<Page<AuditEntry>>("/audit", { query: { ...filter, limit: 50, cursor } });
    setExtra([...extra, ...page.items]);
    setCursor(page.nextCursor ?? null);
  };
  return (
    <>
      <h1 tabIndex={-1}>Audit log</h1>
      <form
        role="search"
        class="grid5"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft });
        }}
      >
        {(
          [
            ["actorId", "Actor id", "text"],
            ["entityId", "Entity id", "text"],
            ["action", "Action", "text"],
            ["from", "From", "date"],
            ["to", "To", "date"],
          ] as const
        ).map(([f, label, type]) => (
          <div class="field" key={f}>
            <label for={`audit-${f}`}>{label}</label>
            <input id={`audit-${f}`} type={type as "text"} value={draft[f]} onInput={(e) => setDraft({ ...draft, [f]: e.currentTarget.value })} />
          </div>
        ))}
        <button type="submit">Search the log</button>
      </form>
      <ErrorBox error={log.error} />
      {log.loading && !entries.length && <Loading />}
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Action</th>
            <th scope="col">Entity</th>
            <th scope="col">Outcome</th>
            <th scope="col">Actor</th>
            <th scope="col">Where</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((a, n) => (
            <tr key={`${a.at}-${a.entityId}-${n}`} class={a.outcome === "denied" ? "denied" : ""}>
              <td>{when(a.at)}</td>
              <td>{a.action}</td>
              <td>
                {a.entityType} <span class="mono">{a.entityId.slice(-12)}</span>
              </td>
              <td>{a.outcome}</td>
              <td>
                {a.actor.role} <span class="mono">{a.actor.userId?.slice(-8) ?? ""}</span>
              </td>
              <td>{[a.actor.ip, a.actor.device?.slice(0, 30), a.actor.region].filter(Boolean).join(" · ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && (
        <button type="button" class="secondary" onClick={() => void more()}>
          Load more
        </button>
      )}
    </>
  );
}

export function DeadLetterQueues() {
  const dlq = useAsync(() => api<DeadLetters>("/ops/dlq", { query: { limit: 20 } }), []);
  const [error, notice, run] = useAction();
  return (
    <>
      <h1 tabIndex={-1}>Dead letters</h1>
      <p>Messages a service could not handle after its retries. Redriving puts them back on the service's queue (audited).</p>
      <button type="button" class="secondary" onClick={dlq.reload}>
        Refresh
      </button>
      <Notice text={notice} />
      <ErrorBox error={error || dlq.error} />
      {dlq.loading && !dlq.data && <Loading />}
      {(dlq.data?.items ?? []).map((s) => (
        <Section key={s.service} title={`${s.service}: ${s.count} dead letter${s.count === 1 ? "" : "s"}`} id={`dlq-${s.service}`}>
          {s.messages.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th scope="col">Event</th>
                  <th scope="col">Handler</th>
                  <th scope="col">Error</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Failed at</th>
                </tr>
              </thead>
              <tbody>
                {s.messages.map((m, n) => (
                  <tr key={m.id ?? n}>
                    <td>{m.type}</td>
                    <td>{m.handler}</td>
                    <td class="wrap">{m.error}</td>
                    <td>{m.attempts}</td>
                    <td>{m.failedAt}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <button
            type="button"
            disabled={s.count === 0}
            onClick={() =>
              void run(async () => {
                const moved = await api<{ redriven: number }>(`/ops/dlq/${s.service}/redrive`, { method: "POST" });
                dlq.reload();
                return moved;
              }, `Redrove the ${s.service} dead letters.`)
            }
          >
            Redrive {s.service}
          </button>
        </Section>
      ))}
    </>
  );
}
