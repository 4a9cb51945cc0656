// "Enter your email" first: check → password for a returning user, or a short sign-up.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, clearExpired, deviceInfo, expired, signIn, type Role } from "../api";
import { navigate } from "../router";
import { ErrorBox } from "../ui";

type Step = "identify" | "login" | "register";

interface Tokens {
  accessToken: string;
  refreshToken: string;
  userId: string;
  role: Role;
}

export function homeFor(role: Role): string {
  return role === "Admin" ? "/admin/orders" : role === "Manager" ? "/manager/approvals" : "/";
}

export function Login({ next }: { next: string | null }) {
  const [step, setStep] = useState<Step>("identify");
  const [identifier, setIdentifier] = useState("");
  const [password, setPassword] = useState("");
  const [username, setUsername] = useState("");
  const [phone, setPhone] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [wasExpired] = useState(expired);
  const focus = useRef<HTMLInputElement>(null);

  useEffect(() => {
    clearExpired();
  }, []);
  useEffect(() => focus.current?.focus(), [step]);

  const done = (tokens: Tokens) => {
    signIn(tokens);
    const target = next && next.startsWith("/") && !next.startsWith("//") ? next : homeFor(tokens.role);
    navigate(target, true);
  };

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

  const check = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      const found = await api<{ exists: boolean }>("/users/check", { body: { identifier: identifier.trim() } });
      if (found.exists) setStep("login");
      else {
        if (!identifier.includes("@")) {
          setError(new Error("No account with that username. Enter your email address to create one."));
          return;
        }
        setUsername(identifier.split("@")[0].replace(/[^a-zA-Z0-9_.-]/g, "").slice(0, 64) || "shopper");
        setStep("register");
      }
    });
  };

  const login = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      const tokens = await api<Tokens>("/users/login", {
        body: { identifier: identifier.trim(), password, deviceInfo: deviceInfo() },
      });
      done(tokens);
    });
  };

  const register = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      const body: Record<string, unknown> = {
        username: username.trim(),
        email: identifier.trim(),
        password,
        deviceInfo: deviceInfo(),
      };
      if (phone.trim()) body.phone = phone.trim();
      const region = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (region) body.region = region.slice(0, 64);
      const created = await api<Tokens>("/users/register", { body });
      done({ ...created, role: created.role ?? "Customer" });
    });
  };

  return (
    <div class="narrow">
      <h1 tabIndex={-1}>{step === "register" ? "Create your account" : "Sign in or create an account"}</h1>
      {wasExpired && step === "identify" && (
        <p class="notice" role="status">
          Your session ended. Please sign in again.
        </p>
      )}
      {step === "identify" && (
        <form onSubmit={check} class="card stack">
          <label for="identifier">Email or username</label>
          <input
            id="identifier"
            ref={focus}
            name="email"
            type="text"
            autoComplete="username email"
            required
            value={identifier}
            onInput={(e) => setIdentifier(e.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            Continue
          </button>
        </form>
      )}
      {step === "login" && (
        <form onSubmit={login} class="card stack">
          <p>
            Welcome back, <strong>{identifier}</strong>.{" "}
            <button type="button" class="link" onClick={() => setStep("identify")}>
              Not you?
            </button>
          </p>
          <label for="password">Password</label>
          <input
            id="password"
            ref={focus}
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </form>
      )}
      {step === "register" && (
        <form onSubmit={register} class="card stack">
          <p>
            New here? Creating an account for <strong>{identifier}</strong>.{" "}
            <button type="button" class="link" onClick={() => setStep("identify")}>
              Change email
            </button>
          </p>
          <label for="username">Username</label>
          <input
            id="username"
            ref={focus}
            autoComplete="nickname"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
          <label for="new-password">Password (at least 10 characters)</label>
          <input
            id="new-password"
            type="password"
            autoComplete="new-password"
            minLength={10}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          <label for="phone">Phone (optional)</label>
          <input id="phone" type="tel" autoComplete="tel" value={phone} onInput={(e) => setPhone(e.currentTarget.value)} />
          <button type="submit" disabled={busy}>
            Create account
          </button>
        </form>
      )}
      <ErrorBox error={error} />
    </div>
  );
}
