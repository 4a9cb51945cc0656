// Checkout pieces shared by the cart and the quick order: what is missing, and placing an order.
import { useState } from "preact/hooks";
import { api, newIdempotencyKey, type Line, type Precheck, type Profile } from "./api";
import { setProfile } from "./profile";
import { ErrorBox } from "./ui";

// The sandbox provider's test cards (api.md): a real deployment would tokenise a card here.
export const TEST_CARDS: { token: string; label: string }[] = [
  { token: "pm_card_ok", label: "Test card that is approved" },
  { token: "pm_card_declined", label: "Test card that is declined" },
  { token: "pm_card_flaky", label: "Test card with a flaky bank" },
  { token: "pm_card_unavailable", label: "Test card whose bank is down" },
  { token: "pm_card_fraud", label: "Test card flagged for review" },
];

export function cardName(profile: Profile | null, id: string | null | undefined): string {
  const method = profile?.paymentMethods.find((m) => m.paymentMethodId === id);
  if (!method) return "your saved card";
  return `${method.brand ?? "Card"} ending ${method.last4 ?? "••••"}`;
}

export function addressName(profile: Profile | null, id: string | null | undefined): string {
  const address = profile?.addresses.find((a) => a.addressId === id);
  return address ? `${address.label}: ${address.line1}, ${address.city}` : "your saved address";
}

export function precheck(lines: Line[]): Promise<Precheck> {
  return api<Precheck>("/orders/precheck", {
    body: { items: lines.map((l) => ({ productId: l.productId, quantity: l.quantity })) },
  });
}

/** Place an order; the same key is reused until it succeeds, so a retry never orders twice. */
export async function placeOrder(
  lines: Line[],
  key: string,
  extra: { addressId?: string; paymentMethodId?: string; promoCode?: string } = {},
): Promise<string> {
  const body: Record<string, unknown> = { items: lines.map((l) => ({ productId: l.productId, quantity: l.quantity })) };
  for (const [k, v] of Object.entries(extra)) if (v) body[k] = v;
  const placed = await api<{ orderId: string }>("/orders", { body, headers: { "Idempotency-Key": key } });
  return placed.orderId;
}

export function useIdempotencyKey(): [string, () => void] {
  const [key, setKey] = useState(newIdempotencyKey);
  return [key, () => setKey(newIdempotencyKey())];
}

/** Asks for exactly what the pre-order check says is missing (an address, a card), once. */
export function MissingDetails({ missing, onDone }: { missing: Precheck["missing"]; onDone: () => void }) {
  const needsAddress = missing.includes("address");
  const needsCard = missing.includes("paymentMethod");
  const [address, setAddress] = useState({ label: "Home", line1: "", line2: "", city: "", state: "", zip: "", country: "US" });
  const [token, setToken] = useState("pm_card_ok");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const field = (name: keyof typeof address, label: string, opts: { required?: boolean; auto?: string } = {}) => (
    <div class="field">
      <label for={`addr-${name}`}>{label}</label>
      <input
        id={`addr-${name}`}
        required={opts.required ?? true}
        autoComplete={opts.auto}
        value={address[name]}
        onInput={(e) => setAddress({ ...address, [name]: e.currentTarget.value })}
      />
    </div>
  );

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const details: Record<string, unknown> = {};
      if (needsAddress) {
        const { line2, ...rest } = address;
        details.addresses = [{ ...rest, ...(line2 ? { line2 } : {}), isDefault: true }];
      }
      if (needsCard) details.paymentMethods = [{ type: "card", token, isDefault: true }];
      setProfile(await api<Profile>("/users/me/details", { body: details }));
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="missing-h">
      <h2 id="missing-h">Before we can ship</h2>
      <p>
        We only need {needsAddress && needsCard ? "a delivery address and a payment method" : needsAddress ? "a delivery address" : "a payment method"}.
        We'll remember {needsAddress && needsCard ? "them" : "it"} for next time.
      </p>
      {needsAddress && (
        <fieldset>
          <legend>Delivery address</legend>
          <div class="grid2">
            {field("label", "Label (e.g. Home)")}
            {field("line1", "Street and number", { auto: "address-line1" })}
            {field("line2", "Apartment, suite (optional)", { required: false, auto: "address-line2" })}
            {field("city", "City", { auto: "address-level2" })}
            {field("state", "State / region", { auto: "address-level1" })}
            {field("zip", "ZIP / postal code", { auto: "postal-code" })}
            {field("country", "Country", { auto: "country" })}
          </div>
        </fieldset>
      )}
      {needsCard && (
        <fieldset>
          <legend>Payment method</legend>
          <label for="card-token">Card</label>
          <select id="card-token" value={token} onChange={(e) => setToken(e.currentTarget.value)}>
            {TEST_CARDS.map((c) => (
              <option key={c.token} value={c.token}>
                {c.label}
              </option>
            ))}
          </select>
        </fieldset>
      )}
      <button type="submit" disabled={busy}>
        Save and continue
      </button>
      <ErrorBox error={error} />
    </form>
  );
}
