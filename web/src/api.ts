// The public API through the gateway (../shared/design/api.md), and the signed-in session.
//
// Auth is a bearer token only (no cookies), so cross-site requests cannot act for the user
// (CSRF-safe by construction). The access token (15 min) is kept in sessionStorage so a reload in
// the same tab stays signed in; the refresh token lives in memory only and is lost on reload.

export type Role = "Customer" | "Manager" | "Admin";

export interface Session {
  accessToken: string;
  userId: string;
  role: Role;
}

export interface Problem {
  status: number;
  code: string;
  title: string;
  detail?: string;
  [extra: string]: unknown;
}

export class ApiError extends Error {
  constructor(public problem: Problem) {
    super(problem.detail || problem.title || problem.code);
  }
  get status(): number {
    return this.problem.status;
  }
  get code(): string {
    return this.problem.code;
  }
}

export interface Page<T> {
  items: T[];
  nextCursor?: string | null;
}

export interface Flags {
  isProfileComplete: boolean;
  profileCompletionPrompted: boolean;
  lastActiveAt?: string | null;
  preferredPaymentMethod?: string | null;
  orderCount: number;
}

export interface Address {
  addressId: string;
  label: string;
  line1: string;
  line2?: string | null;
  city: string;
  state: string;
  zip: string;
  country: string;
  isDefault: boolean;
}

export interface PaymentMethod {
  paymentMethodId: string;
  type: string;
  brand?: string | null;
  last4?: string | null;
  isDefault: boolean;
}

export interface Profile {
  userId: string;
  username: string;
  email: string;
  phone?: string | null;
  role: Role;
  addresses: Address[];
  preferences: {
    partialFulfillment?: "ask" | "accept" | "cancel";
    notificationChannels?: string[];
    [key: string]: unknown;
  };
  paymentMethods: PaymentMethod[];
  flags: Flags;
  disabled?: boolean;
  createdAt?: string;
}

export interface Product {
  productId: string;
  name: string;
  description?: string | null;
  category: string;
  priceCents: number;
  currency: string;
  stockAvailable: number;
  lowStock: boolean;
  stock?: { received: number; available: number; reserved: number; committed: number };
  lowStockThreshold?: number;
}

export interface Line {
  productId: string;
  quantity: number;
}

export interface PrecheckLine {
  productId: string;
  requested: number;
  available: number;
  status: "available" | "partial" | "unavailable";
  alternatives: string[];
}

export interface Precheck {
  ready: boolean;
  profileComplete: boolean;
  missing: ("address" | "paymentMethod")[];
  items: PrecheckLine[];
  defaultAddressId: string | null;
  preferredPaymentMethodId: string | null;
  // Incomplete and never asked before: the first time, explain why we ask (then just ask).
  promptProfileCompletion?: boolean;
}

export type OrderStatus =
  | "PENDING"
  | "AWAITING_CUSTOMER_DECISION"
  | "AWAITING_APPROVAL"
  | "AWAITING_PAYMENT"
  | "PAYMENT_FAILED"
  | "PAID"
  | "CONFIRMED"
  | "REJECTED"
  | "CANCELLED";

export const TERMINAL: OrderStatus[] = ["CONFIRMED", "REJECTED", "CANCELLED"];

export interface OrderLine {
  productId: string;
  name: string;
  quantity: number;
  priceCents: number;
  fulfilledQuantity: number | null;
}

export type FulfilmentStatus = "PENDING" | "SHIPPED" | "DELIVERED";

export interface Fulfilment {
  status: FulfilmentStatus;
  shipmentId: string;
  carrier?: string | null;
  trackingNumber?: string | null;
  shippedAt?: string | null;
  deliveredAt?: string | null;
}

export type ReturnStatus = "REQUESTED" | "APPROVED" | "REJECTED" | "RECEIVED" | "REFUNDED" | "REFUND_FAILED";

export const RETURN_STATUSES: ReturnStatus[] = ["REQUESTED", "APPROVED", "REJECTED", "RECEIVED", "REFUNDED", "REFUND_FAILED"];

export interface ReturnLine {
  productId: string;
  quantity: number;
  name?: string | null;
}

/** A return as the order view lists it (`returns`) and as the returns routes answer it. */
export interface Return {
  returnId: string;
  orderId?: string;
  userId?: string;
  status: ReturnStatus;
  items: ReturnLine[];
  refundCents: number;
  currency?: string;
  reason?: string | null;
  decisionReason?: string | null;
  rejectionReason?: string | null;
  failureReason?: string | null;
  refundedCents?: number;
  createdAt?: string;
  updatedAt?: string;
  /** The end of the return's current wait (APPROVED: the parcel; RECEIVED: the refund). */
  dueAt?: string | null;
}

export interface Shipment {
  shipmentId: string;
  orderId: string;
  userId: string;
  status: FulfilmentStatus;
  lines: ReturnLine[];
  address?: Record<string, string> | null;
  carrier?: string | null;
  trackingNumber?: string | null;
  createdAt: string;
  shippedAt?: string | null;
  deliveredAt?: string | null;
}

export interface Order {
  orderId: string;
  userId: string;
  status: OrderStatus;
  items: OrderLine[];
  subtotalCents: number;
  discountCents: number;
  totalCents: number;
  currency: string;
  flags: { partialFulfillment: boolean; fraudFlag: boolean };
  createdAt: string;
  updatedAt: string;
  address?: Record<string, string> | null;
  payment?: {
    status: string;
    paymentId?: string | null;
    attempts: number;
    lastError?: string | null;
    paymentMethodId: string;
  };
  promoCode?: string | null;
  approvalReason?: string | null;
  rejectionReason?: string | null;
  cancelReason?: string | null;
  alternatives?: string[];
  deadline?: string | null;
  auditLogs?: { at: string; action: string; fromStatus: string | null; toStatus: string; role: string }[];
  fulfilment?: Fulfilment | null;
  returns?: Return[];
  refundedCents?: number;
}

export interface TimelineEntry {
  at: string;
  step: string;
  service: string;
  eventType?: string | null;
  eventId?: string | null;
  detail?: unknown;
}

export interface Notification {
  notificationId: string;
  type: string;
  channel: string;
  title: string;
  body: string;
  entityType?: string | null;
  entityId?: string | null;
  status: string;
  createdAt: string;
  readAt?: string | null;
}

export interface SalesReport {
  from: string;
  to: string;
  currency: string;
  revenueCents: number;
  refundsCents?: number;
  netRevenueCents?: number;
  ordersByStatus: Record<string, number>;
  averageOrderValueCents: number;
  paymentFailureRate: number;
  partialFulfillmentRate: number;
  topProducts: { productId: string; name: string; quantity: number; revenueCents: number }[];
  // `name`: a product group's catalogue name (null for days and unknown products).
  groups: { key: string; name?: string | null; orders: number; revenueCents: number; refundsCents?: number; netRevenueCents?: number }[];
}

export interface Funnel {
  registered: number;
  profileComplete: number;
  firstOrder: number;
  repeatOrder: number;
}

export interface AuditEntry {
  at: string;
  action: string;
  entityType: string;
  entityId: string;
  outcome: string;
  actor: { userId: string | null; role: string; ip?: string | null; device?: string | null; region?: string | null };
  correlationId?: string | null;
}

export interface DeadLetters {
  items: {
    service: string;
    count: number;
    messages: { id: string | null; type: string | null; error: string | null; attempts: number | null; failedAt: string | null; handler: string | null }[];
  }[];
}

// --- the session ------------------------------------------------------------------------------

const SESSION_KEY = "shop.session";
let refreshToken: string | null = null; // memory only
let current: Session | null = load();
const listeners = new Set<() => void>();

function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function signIn(tokens: { accessToken: string; refreshToken?: string; userId: string; role: Role }): void {
  current = { accessToken: tokens.accessToken, userId: tokens.userId, role: tokens.role };
  refreshToken = tokens.refreshToken ?? null;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
  listeners.forEach((l) => l());
}

export function signOut(): void {
  current = null;
  refreshToken = null;
  sessionStorage.removeItem(SESSION_KEY);
  listeners.forEach((l) => l());
}

// --- requests ---------------------------------------------------------------------------------

type Query = Record<string, string | number | undefined | null>;

interface Options {
  method?: string;
  body?: unknown;
  query?: Query;
  headers?: Record<string, string>;
  raw?: boolean;
}

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return `/api/v1${path}${qs ? `?${qs}` : ""}`;
}

async function send(path: string, options: Options): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json", ...options.headers };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (current) headers.authorization = `Bearer ${current.accessToken}`;
  return fetch(url(path, options.query), {
    method: options.method ?? (options.body === undefined ? "GET" : "POST"),
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "omit",
  });
}

async function refresh(): Promise<boolean> {
  if (!refreshToken || !current) return false;
  const answer = await fetch(url("/users/token/refresh"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refreshToken }),
    credentials: "omit",
  });
  if (!answer.ok) return false;
  const pair = (await answer.json()) as { accessToken: string; refreshToken: string };
  signIn({ ...current, ...pair });
  return true;
}

async function problemOf(response: Response): Promise<Problem> {
  try {
    const body = (await response.json()) as Problem;
    return { ...body, status: response.status, code: body.code ?? "ERROR", title: body.title ?? response.statusText };
  } catch {
    return { status: response.status, code: "ERROR", title: response.statusText || "Request failed" };
  }
}

export async function api<T>(path: string, options: Options = {}): Promise<T> {
  let response: Response;
  try {
    response = await send(path, options);
    if (response.status === 401 && current && (await refresh())) response = await send(path, options);
  } catch {
    throw new ApiError({ status: 0, code: "NETWORK", title: "The shop cannot be reached. Check your connection." });
  }
  if (response.status === 401 && current && !path.startsWith("/users/login")) {
    signOut();
    expired = true;
  }
  if (!response.ok) throw new ApiError(await problemOf(response));
  if (options.raw) return (await response.text()) as T;
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

// Set when a 401 ended the session, so the sign-in page can say why.
export let expired = false;
export function clearExpired(): void {
  expired = false;
}

export function deviceInfo(): Record<string, string> {
  const ua = navigator.userAgent;
  const os = /Windows/.test(ua) ? "Windows" : /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "other";
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "other";
  const width = window.screen?.width ?? window.innerWidth;
  const deviceType = /Mobi/.test(ua) ? "mobile" : width < 1024 && "ontouchstart" in window ? "tablet" : "desktop";
  return {
    userAgent: ua.slice(0, 500),
    os,
    browser,
    deviceType,
    screen: `${window.screen?.width ?? 0}x${window.screen?.height ?? 0}`,
  };
}

export function newIdempotencyKey(): string {
  // randomUUID needs a secure context; a page over plain HTTP on a LAN name is not one.
  if (typeof crypto.randomUUID === "function" && window.isSecureContext) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function money(cents: number, currency = "USD"): string {
  return new Intl.NumberFormat("en-US", { style: "currency", currency }).format(cents / 100);
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "medium" }) : "";
}
