// The customer's profile: addresses, cards, preferences (partial fulfilment, channels).
import { useState } from "preact/hooks";
import { api, type Profile as ProfileData } from "../api";
import { MissingDetails, TEST_CARDS } from "../checkout";
import { reloadProfile, setProfile, useProfile } from "../profile";
import { ErrorBox, Loading, Section } from "../ui";

const CHANNELS = [
  ["email", "Email"],
  ["sms", "SMS"],
  ["push", "Push"],
] as const;

export function Profile() {
  const profile = useProfile();
  const [error, setError] = useState<unknown>(null);
  const [adding, setAdding] = useState<"address" | "paymentMethod" | null>(null);
  const [token, setToken] = useState("pm_card_ok");
  const [saved, setSaved] = useState("");

  if (!profile) return <Loading what="Loading your profile" />;

  const run = async (body: () => Promise<ProfileData | unknown>, message: string) => {
    setError(null);
    setSaved("");
    try {
      await body();
      await reloadProfile();
      setSaved(message);
    } catch (e) {
      setError(e);
    }
  };
  const details = (body: unknown) => api<ProfileData>("/users/me/details", { body }).then(setProfile);
  const channels = profile.preferences.notificationChannels ?? [];

  return (
    <>
      <h1 tabIndex={-1}>Your profile</h1>
      <p>
        {profile.username} · {profile.email}
        {profile.flags.isProfileComplete ? (
          <span class="badge ok">Ready for one-click orders</span>
        ) : (
          <span class="badge warn">Add an address and a card to order</span>
        )}
      </p>
      {saved && (
        <p class="notice" role="status">
          {saved}
        </p>
      )}
      <ErrorBox error={error} />
      {adding === "address" && (
        <MissingDetails
          missing={["address"]}
          onDone={() => {
            setAdding(null);
            setSaved("Address saved.");
          }}
        />
      )}
      <div class="columns">
        <Section title="Addresses">
          <ul>
            {profile.addresses.map((a) => (
              <li key={a.addressId}>
                <strong>{a.label}</strong>: {a.line1}
                {a.line2 ? `, ${a.line2}` : ""}, {a.zip} {a.city}, {a.state}, {a.country}{" "}
                {a.isDefault ? (
                  <span class="badge ok">default</span>
                ) : (
                  <button
                    type="button"
                    class="secondary small"
                    onClick={() => void run(() => api(`/users/me/addresses/${a.addressId}/default`, { method: "POST" }), "Default address changed.")}
                  >
                    Make default
                  </button>
                )}{" "}
                <button
                  type="button"
                  class="secondary small"
                  aria-label={`Remove address ${a.label}`}
                  onClick={() => void run(() => api(`/users/me/addresses/${a.addressId}`, { method: "DELETE" }), "Address removed.")}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
          {adding !== "address" && (
            <button type="button" class="secondary" onClick={() => setAdding("address")}>
              Add an address
            </button>
          )}
        </Section>
        <Section title="Payment methods">
          <ul>
            {profile.paymentMethods.map((m) => (
              <li key={m.paymentMethodId}>
                {m.brand ?? "Card"} ending {m.last4} {m.isDefault && <span class="badge ok">default</span>}
              </li>
            ))}
          </ul>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(() => details({ paymentMethods: [{ type: "card", token }] }), "Card added.");
            }}
          >
            <label for="new-card">Add a card</label>
            <select id="new-card" value={token} onChange={(e) => setToken(e.currentTarget.value)}>
              {TEST_CARDS.map((c) => (
                <option key={c.token} value={c.token}>
                  {c.label}
                </option>
              ))}
            </select>
            <button type="submit" class="secondary">
              Add card
            </button>
          </form>
        </Section>
        <Section title="Preferences">
          <label for="partial">When only part of an order is in stock</label>
          <select
            id="partial"
            value={profile.preferences.partialFulfillment ?? "ask"}
            onChange={(e) =>
              void run(() => details({ preferences: { partialFulfillment: e.currentTarget.value } }), "Preference saved.")
            }
          >
            <option value="ask">Ask me</option>
            <option value="accept">Send what is available</option>
            <option value="cancel">Cancel the order</option>
          </select>
          <fieldset>
            <legend>Also notify me by</legend>
            {CHANNELS.map(([value, label]) => (
              <label key={value} class="check">
                <input
                  type="checkbox"
                  checked={channels.includes(value)}
                  onChange={(e) => {
                    const next = e.currentTarget.checked ? [...channels, value] : channels.filter((c) => c !== value);
                    void run(() => details({ preferences: { notificationChannels: ["inApp", ...next.filter((c) => c !== "inApp")] } }), "Preference saved.");
                  }}
                />{" "}
                {label}
              </label>
            ))}
          </fieldset>
        </Section>
      </div>
    </>
  );
}
