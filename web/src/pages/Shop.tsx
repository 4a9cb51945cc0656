// Home: the profile prompt (once), promotions, recommendations and the catalogue with search.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, money, session, type Line, type Order, type Page, type Precheck, type Product } from "../api";
import { cart } from "../cart";
import { addressName, cardName, placeOrder, precheck, useIdempotencyKey } from "../checkout";
import { reloadProfile, useProfile } from "../profile";
import { navigate } from "../router";
import { ErrorBox, Loading, Section, StockBadge, useAsync } from "../ui";

export function Shop() {
  const signedIn = session();
  const customer = signedIn?.role === "Customer";
  return (
    <>
      <h1 tabIndex={-1}>Shop</h1>
      {customer && <ProfilePrompt />}
      {customer && <BuyAgain />}
      {customer && <Promotions />}
      {customer && <Recommendations />}
      <Catalogue />
    </>
  );
}

function ProfilePrompt() {
  const profile = useProfile();
  if (!profile || profile.flags.isProfileComplete || profile.flags.profileCompletionPrompted) return null;
  const dismiss = async () => {
    await api("/users/me/profile-prompted", { method: "POST" });
    await reloadProfile();
  };
  return (
    <aside class="notice" aria-label="Complete your profile">
      <p>Add a delivery address and a card now, and checkout takes one click later.</p>
      <a class="button" href="/profile">
        Add details
      </a>{" "}
      <button type="button" class="secondary" onClick={() => void dismiss()}>
        Not now
      </button>
    </aside>
  );
}

/** A returning customer's last confirmed order, one click (and a confirmation) from again. */
function BuyAgain() {
  const profile = useProfile();
  const [open, setOpen] = useState(false);
  const last = useAsync(() => api<Page<Order>>("/orders", { query: { status: "CONFIRMED", limit: 1 } }), []);
  const order = last.data?.items[0];
  if (!order || !profile?.flags.isProfileComplete) return null;
  const lines = order.items.map((i) => ({ productId: i.productId, quantity: i.quantity }));
  return (
    <Section title="Buy again">
      <p>
        {order.items.map((i) => `${i.quantity}× ${i.name}`).join(", ")} · last ordered {new Date(order.createdAt).toLocaleDateString("en-US")}
      </p>
      <button type="button" onClick={() => setOpen(true)}>
        Order again
      </button>
      {open && <QuickOrder lines={lines} title="your last order" onClose={() => setOpen(false)} />}
    </Section>
  );
}

function Promotions() {
  const promos = useAsync(() => api<Page<{ code: string; percentOff: number; expiresAt: string }>>("/promotions"), []);
  const items = promos.data?.items ?? [];
  if (!items.length) return null;
  return (
    <Section title="Your promotions">
      <ul class="promos">
        {items.map((p) => (
          <li key={p.code}>
            <strong>{p.percentOff}% off</strong> with code <code>{p.code}</code> until{" "}
            {new Date(p.expiresAt).toLocaleDateString("en-US")}
          </li>
        ))}
      </ul>
    </Section>
  );
}

function Recommendations() {
  const recs = useAsync(async () => {
    const found = await api<Page<{ productId: string; reason: string }>>("/recommendations");
    const products = await Promise.all(
      found.items.slice(0, 4).map((r) => api<Product>(`/products/${encodeURIComponent(r.productId)}`).catch(() => null)),
    );
    return products.filter((p): p is Product => p !== null && p.stockAvailable > 0);
  }, []);
  if (!recs.data?.length) return null;
  return (
    <Section title="Recommended for you">
      <ProductGrid products={recs.data} />
    </Section>
  );
}

function Catalogue() {
  const [q, setQ] = useState("");
  const [category, setCategory] = useState("");
  const [applied, setApplied] = useState({ q: "", category: "" });
  const [items, setItems] = useState<Product[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [categories, setCategories] = useState<string[]>([]);
  const page = useAsync(
    () => api<Page<Product>>("/products", { query: { q: applied.q, category: applied.category, limit: 24 } }),
    [applied.q, applied.category],
  );
  useEffect(() => {
    if (!page.data) return;
    setItems(page.data.items);
    setCursor(page.data.nextCursor ?? null);
    if (!applied.q && !applied.category) setCategories([...new Set(page.data.items.map((p) => p.category))].sort());
  }, [page.data]);

  const more = async () => {
    if (!cursor) return;
    const next = await api<Page<Product>>("/products", { query: { q: applied.q, category: applied.category, limit: 24, cursor } });
    setItems([...items, ...next.items]);
    setCursor(next.nextCursor ?? null);
  };

  return (
    <Section title="Catalogue">
      <form
        role="search"
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ q: q.trim(), category });
        }}
      >
        <label for="search" class="sr-only">
          Search products
        </label>
        <input id="search" type="search" placeholder="Search products" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        <label for="category" class="sr-only">
          Category
        </label>
        <select id="category" value={category} onChange={(e) => setCategory(e.currentTarget.value)}>
          <option value="">All categories</option>
          {categories.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
        <button type="submit">Search</button>
      </form>
      {page.loading && !items.length && <Loading what="Loading products" />}
      <ErrorBox error={page.error} />
      {!page.loading && !items.length && !page.error && <p>No products match your search.</p>}
      <ProductGrid products={items} />
      {cursor && (
        <button type="button" class="secondary" onClick={() => void more()}>
          More products
        </button>
      )}
    </Section>
  );
}

export function ProductGrid({ products }: { products: Product[] }) {
  const [quick, setQuick] = useState<Product | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  const profile = useProfile();
  const customer = session()?.role === "Customer";
  const signedOut = !session();
  return (
    <>
      <ul class="grid" aria-live="polite">
        {products.map((p) => (
          <li key={p.productId} class="product" data-product-id={p.productId}>
            <h3>{p.name}</h3>
            <p class="muted">{p.description}</p>
            <p class="price">
              {money(p.priceCents, p.currency)} <StockBadge product={p} />
            </p>
            {(customer || signedOut) && (
              <div class="row">
                <button
                  type="button"
                  class="secondary"
                  disabled={p.stockAvailable <= 0}
                  aria-label={`Add ${p.name} to cart`}
                  onClick={() => {
                    cart.add(p);
                    setAdded(p.name);
                  }}
                >
                  Add to cart
                </button>
                {customer && profile?.flags.isProfileComplete && p.stockAvailable > 0 && (
                  <button type="button" aria-label={`Buy ${p.name} now`} onClick={() => setQuick(p)}>
                    Buy now
                  </button>
                )}
              </div>
            )}
          </li>
        ))}
      </ul>
      <p role="status" class="sr-only">
        {added ? `${added} added to your cart` : ""}
      </p>
      {quick && <QuickOrder lines={[{ productId: quick.productId, quantity: 1 }]} title={quick.name} onClose={() => setQuick(null)} />}
    </>
  );
}

/** One-step order with the saved address and preferred card (a returning customer's path). */
export function QuickOrder({ lines, title, onClose }: { lines: Line[]; title: string; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const profile = useProfile();
  const [key] = useIdempotencyKey();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const check = useAsync<Precheck>(() => precheck(lines), []);
  const products = useAsync(
    () => Promise.all(lines.map((l) => api<Product>(`/products/${encodeURIComponent(l.productId)}`))),
    [],
  );

  useEffect(() => {
    dialog.current?.showModal();
  }, []);

  const total = (products.data ?? []).reduce((sum, p, i) => sum + p.priceCents * lines[i].quantity, 0);
  const place = async () => {
    setBusy(true);
    setError(null);
    try {
      const orderId = await placeOrder(lines, key);
      dialog.current?.close();
      navigate(`/orders/${orderId}`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  const result = check.data;

  return (
    <dialog ref={dialog} aria-labelledby="quick-h" onClose={onClose} class="dialog">
      <h2 id="quick-h">Quick order: {title}</h2>
      {check.loading && <Loading what="Checking stock and your details" />}
      <ErrorBox error={check.error} />
      {result && result.missing.length > 0 && (
        <p>
          We still need {result.missing.join(" and ")}. <a href="/cart">Finish in the cart</a>.
        </p>
      )}
      {result && result.missing.length === 0 && (
        <>
          <dl class="summary">
            <dt>Ship to</dt>
            <dd>{addressName(profile, result.defaultAddressId)}</dd>
            <dt>Pay with</dt>
            <dd>{cardName(profile, result.preferredPaymentMethodId)}</dd>
            <dt>Total</dt>
            <dd>{money(total, products.data?.[0]?.currency)}</dd>
          </dl>
          {result.items.some((i) => i.status !== "available") && (
            <p class="notice">
              Not everything is in stock: {result.items.map((i) => `${i.available} of ${i.requested} available`).join(", ")}.
            </p>
          )}
        </>
      )}
      <ErrorBox error={error} />
      <div class="row">
        <button type="button" disabled={busy || !result || result.missing.length > 0} onClick={() => void place()}>
          Place order
        </button>
        <button type="button" class="secondary" onClick={() => dialog.current?.close()}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
