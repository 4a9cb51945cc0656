// The cart and its checkout: pre-order check, only the missing details, alternatives, place.
import { useEffect, useState } from "preact/hooks";
import { api, money, type Precheck, type Product } from "../api";
import { cart, useCart } from "../cart";
import { MissingDetails, placeOrder, precheck, useIdempotencyKey } from "../checkout";
import { useProfile } from "../profile";
import { navigate } from "../router";
import { ErrorBox, Section, useAsync } from "../ui";

export function Cart() {
  const lines = useCart();
  const profile = useProfile();
  const [check, setCheck] = useState<Precheck | null>(null);
  const [addressId, setAddressId] = useState("");
  const [paymentMethodId, setPaymentMethodId] = useState("");
  const [promoCode, setPromoCode] = useState("");
  const [key, newKey] = useIdempotencyKey();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const run = async (body: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await body();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const review = () =>
    run(async () => {
      const result = await precheck(lines);
      setCheck(result);
      setAddressId((current) => current || result.defaultAddressId || "");
      setPaymentMethodId((current) => current || result.preferredPaymentMethodId || "");
    });

  const place = () =>
    run(async () => {
      const orderId = await placeOrder(lines, key, {
        addressId: addressId || undefined,
        paymentMethodId: paymentMethodId || undefined,
        promoCode: promoCode.trim() || undefined,
      });
      cart.clear();
      newKey();
      navigate(`/orders/${orderId}`);
    });

  // The cart changed after a check (an alternative added, a quantity changed): check again.
  const signature = lines.map((l) => `${l.productId}:${l.quantity}`).join(",");
  useEffect(() => {
    if (check && lines.length) void review();
  }, [signature]);

  const total = lines.reduce((sum, l) => sum + l.priceCents * l.quantity, 0);
  const lineCheck = (productId: string) => check?.items.find((i) => i.productId === productId);

  if (!lines.length) {
    return (
      <>
        <h1 tabIndex={-1}>Your cart</h1>
        <p>
          Your cart is empty. <a href="/">Browse the shop</a>.
        </p>
      </>
    );
  }

  return (
    <>
      <h1 tabIndex={-1}>Your cart</h1>
      <table>
        <caption class="sr-only">Items in your cart</caption>
        <thead>
          <tr>
            <th scope="col">Product</th>
            <th scope="col">Price</th>
            <th scope="col">Quantity</th>
            <th scope="col">Availability</th>
          </tr>
        </thead>
        <tbody>
          {lines.map((l) => {
            const found = lineCheck(l.productId);
            return (
              <tr key={l.productId} data-product-id={l.productId}>
                <th scope="row">{l.name}</th>
                <td>{money(l.priceCents, l.currency)}</td>
                <td>
                  <label for={`qty-${l.productId}`} class="sr-only">
                    Quantity of {l.name}
                  </label>
                  <input
                    id={`qty-${l.productId}`}
                    type="number"
                    min={0}
                    max={100}
                    class="qty"
                    value={l.quantity}
                    onChange={(e) => cart.set(l.productId, Number(e.currentTarget.value))}
                  />
                </td>
                <td>
                  {!found ? (
                    <span class="muted">not checked yet</span>
                  ) : found.status === "available" ? (
                    <span class="badge ok">Available</span>
                  ) : found.status === "partial" ? (
                    <span class="badge warn">Only {found.available} of {found.requested} available</span>
                  ) : (
                    <span class="badge bad">Out of stock</span>
                  )}
                  {found && found.alternatives.length > 0 && <Alternatives ids={found.alternatives} />}
                </td>
              </tr>
            );
          })}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row">Total</th>
            <td colSpan={3}>{money(total, lines[0].currency)}</td>
          </tr>
        </tfoot>
      </table>

      {!check && (
        <div class="row">
          <button type="button" disabled={busy} onClick={() => void review()}>
            Check out
          </button>
          <button type="button" class="secondary" onClick={() => cart.clear()}>
            Empty cart
          </button>
        </div>
      )}

      {check && check.missing.length > 0 && (
        <MissingDetails missing={check.missing} onDone={() => void review()} />
      )}

      {check && check.missing.length === 0 && (
        <Section title="Delivery and payment">
          <div class="grid2">
            <div class="field">
              <label for="address">Deliver to</label>
              <select id="address" value={addressId} onChange={(e) => setAddressId(e.currentTarget.value)}>
                {(profile?.addresses ?? []).map((a) => (
                  <option key={a.addressId} value={a.addressId}>
                    {a.label}: {a.line1}, {a.city}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="payment">Pay with</label>
              <select id="payment" value={paymentMethodId} onChange={(e) => setPaymentMethodId(e.currentTarget.value)}>
                {(profile?.paymentMethods ?? []).map((m) => (
                  <option key={m.paymentMethodId} value={m.paymentMethodId}>
                    {m.brand ?? "Card"} ending {m.last4}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="promo">Promo code (optional)</label>
              <input id="promo" value={promoCode} onInput={(e) => setPromoCode(e.currentTarget.value)} />
            </div>
          </div>
          {check.items.some((i) => i.status === "partial") && (
            <p class="notice">Some items are short. If your preference is to be asked, we'll ask you before charging.</p>
          )}
          <button type="button" disabled={busy || check.items.every((i) => i.status === "unavailable")} onClick={() => void place()}>
            Place order
          </button>
        </Section>
      )}
      <ErrorBox error={error} />
    </>
  );
}

/** Other products of the same category that are in stock, each one click from the cart. */
export function Alternatives({ ids }: { ids: string[] }) {
  const found = useAsync(async () => {
    const all = await Promise.all(
      ids.slice(0, 3).map((id) => api<Product>(`/products/${encodeURIComponent(id)}`).catch(() => null)),
    );
    return all.filter((p): p is Product => p !== null && p.stockAvailable > 0);
  }, [ids.join(",")]);
  const products = found.data ?? [];
  if (!products.length) return null;
  return (
    <div class="alternatives">
      <p>You might take instead:</p>
      <ul>
        {products.map((p) => (
          <li key={p.productId}>
            {p.name} ({money(p.priceCents, p.currency)}){" "}
            <button type="button" class="secondary small" onClick={() => cart.add(p)} aria-label={`Add ${p.name} to cart`}>
              Add to cart
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
