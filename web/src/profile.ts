// The signed-in user's profile (GET /users/me), loaded once per session and shared.
import { useEffect, useState } from "preact/hooks";
import { api, type Profile } from "./api";

let profile: Profile | null = null;
let pending: Promise<Profile> | null = null;
const listeners = new Set<() => void>();

function set(next: Profile | null): void {
  profile = next;
  listeners.forEach((l) => l());
}

export function reloadProfile(): Promise<Profile> {
  pending = api<Profile>("/users/me").then((p) => {
    set(p);
    return p;
  });
  pending.finally(() => (pending = null)).catch(() => undefined);
  return pending;
}

export function setProfile(next: Profile | null): void {
  set(next);
}

/** The profile (loading it on first use); null until it is there. */
export function useProfile(): Profile | null {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = () => setTick((t) => t + 1);
    listeners.add(listener);
    if (!profile && !pending) reloadProfile().catch(() => undefined);
    return () => listeners.delete(listener);
  }, []);
  return profile;
}
