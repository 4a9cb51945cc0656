// The cart: product id → quantity, per browser tab (sessionStorage), shared by every screen.
import { useEffect, useState } from "preact/hooks";
import type { Line, Product } from "./api";

export interface CartLine extends Line {
  name: string;
  priceCents: number;
  currency: string;
}

const KEY = "shop.cart";
const listeners = new Set<() => void>();
let lines: CartLine[] = (() => {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? "[]") as CartLine[];
  } catch {
    return [];
  }
})();

function save(next: CartLine[]): void {
  lines = next.filter((l) => l.quantity > 0);
  sessionStorage.setItem(KEY, JSON.stringify(lines));
  listeners.forEach((l) => l());
}

export const cart = {
  lines: () => lines,
  count: () => lines.reduce((n, l) => n + l.quantity, 0),
  add(product: Product, quantity = 1): void {
    const found = lines.find((l) => l.productId === product.productId);
    if (found) save(lines.map((l) => (l === found ? { ...l, quantity: Math.min(100, l.quantity + quantity) } : l)));
    else
      save([
        ...lines,
        { productId: product.productId, quantity, name: product.name, priceCents: product.priceCents, currency: product.currency },
      ]);
  },
  set(productId: string, quantity: number): void {
    save(lines.map((l) => (l.productId === productId ? { ...l, quantity: Math.max(0, Math.min(100, quantity)) } : l)));
  },
  clear(): void {
    save([]);
  },
};

export function useCart(): CartLine[] {
  const [, setTick] = useState(0);
  useEffect(() => {
    const listener = () => setTick((t) => t + 1);
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
  return lines;
}
