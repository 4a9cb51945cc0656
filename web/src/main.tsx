// The app shell: navigation by role, routes with their roles, and the forbidden page.
import { render, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, onSessionChange, session, signOut, type Notification, type Page, type Role } from "./api";
import { cart, useCart } from "./cart";
import { setProfile } from "./profile";
import { interceptLinks, match, navigate, useLocation } from "./router";
import { useAsync, useInterval } from "./ui";
import { Audit, DeadLetterQueues, Products, Users, Warehouse } from "./pages/Admin";
import { Cart } from "./pages/Cart";
import { Approvals, Reports, Returns } from "./pages/Manager";
import { Notifications } from "./pages/Notifications";
import { OrderDetail, OrderList } from "./pages/Orders";
import { Profile } from "./pages/Profile";
import { Shop } from "./pages/Shop";
import { Login, homeFor } from "./pages/Login";
import "./style.css";

const STAFF: Role[] = ["Manager", "Admin"];
const ALL: Role[] = ["Customer", "Manager", "Admin"];

interface Route {
  pattern: string;
  roles: Role[];
  view: (params: Record<string, string>, ctx: { refreshInbox: () => void }) => ComponentChildren;
}

const ROUTES: Route[] = [
  { pattern: "/", roles: ["Customer"], view: () => <Shop /> },
  { pattern: "/cart", roles: ["Customer"], view: () => <Cart /> },
  { pattern: "/profile", roles: ["Customer"], view: () => <Profile /> },
  { pattern: "/orders", roles: ALL, view: () => <OrderList title={session()?.role === "Customer" ? "Your orders" : "Orders"} /> },
  { pattern: "/orders/:orderId", roles: ALL, view: (p) => <OrderDetail orderId={p.orderId} /> },
  { pattern: "/notifications", roles: ALL, view: (_, ctx) => <Notifications onRead={ctx.refreshInbox} /> },
  { pattern: "/manager/approvals", roles: STAFF, view: () => <Approvals /> },
  { pattern: "/manager/returns", roles: STAFF, view: () => <Returns /> },
  { pattern: "/manager/reports", roles: STAFF, view: () => <Reports /> },
  { pattern: "/admin/orders", roles: ["Admin"], view: () => <OrderList title="All orders" /> },
  { pattern: "/admin/users", roles: ["Admin"], view: () => <Users /> },
  { pattern: "/admin/products", roles: ["Admin"], view: () => <Products /> },
  { pattern: "/admin/shipments", roles: STAFF, view: () => <Warehouse /> },
  { pattern: "/admin/audit", roles: STAFF, view: () => <Audit /> },
  { pattern: "/admin/dlq", roles: ["Admin"], view: () => <DeadLetterQueues /> },
];

const NAV: { href: string; label: string; roles: Role[] }[] = [
  { href: "/", label: "Shop", roles: ["Customer"] },
  { href: "/cart", label: "Cart", roles: ["Customer"] },
  { href: "/orders", label: "My orders", roles: ["Customer"] },
  { href: "/profile", label: "Profile", roles: ["Customer"] },
  { href: "/manager/approvals", label: "Approvals", roles: STAFF },
  { href: "/manager/returns", label: "Returns", roles: STAFF },
  { href: "/manager/reports", label: "Reports", roles: STAFF },
  { href: "/admin/orders", label: "Orders", roles: ["Admin"] },
  { href: "/orders", label: "Orders", roles: ["Manager"] },
  { href: "/admin/users", label: "Users", roles: ["Admin"] },
  { href: "/admin/products", label: "Products", roles: ["Admin"] },
  { href: "/admin/shipments", label: "Warehouse", roles: STAFF },
  { href: "/admin/audit", label: "Audit log", roles: STAFF },
  { href: "/admin/dlq", label: "Dead letters", roles: ["Admin"] },
  { href: "/notifications", label: "Notifications", roles: ALL },
];

function Forbidden({ role, needs }: { role: Role; needs: Role[] }) {
  return (
    <div class="narrow" data-testid="forbidden">
      <h1 tabIndex={-1}>Access denied</h1>
      <p role="alert">
        This page is only for {needs.join(" or ")} accounts. You are signed in as a {role}, so you cannot open it.
      </p>
      <p>
        <a href={homeFor(role)}>Go to your home page</a>
      </p>
    </div>
  );
}

function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}

function NotFound() {
  return (
    <div class="narrow">
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is nothing at this address. <a href="/">Go to the shop</a>.
      </p>
    </div>
  );
}

function Nav({ role, unread }: { role: Role; unread: number }) {
  const lines = useCart();
  const { path } = useLocation();
  const count = lines.reduce((n, l) => n + l.quantity, 0);
  return (
    <nav aria-label="Main">
      <ul>
        {NAV.filter((n) => n.roles.includes(role)).map((n) => (
          <li key={n.href + n.label}>
            <a href={n.href} aria-current={path === n.href ? "page" : undefined}>
              {n.label}
              {n.href === "/cart" && count > 0 && <span class="count"> ({count})</span>}
              {n.href === "/notifications" && unread > 0 && (
                <>
                  <span class="count" aria-hidden="true">
                    {" "}
                    ({unread})
                  </span>
                  <span class="sr-only">, {unread} unread</span>
                </>
              )}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function App() {
  const [, setTick] = useState(0);
  const { path, query } = useLocation();
  useEffect(
    () =>
      onSessionChange(() => {
        setProfile(null);
        setTick((t) => t + 1);
      }),
    [],
  );
  const current = session();
  const inbox = useAsync(
    () =>
      current ? api<Page<Notification>>("/notifications", { query: { limit: 50 } }) : Promise.resolve({ items: [] }),
    [current?.userId],
  );
  useInterval(inbox.reload, 15000, Boolean(current));
  const unread = (inbox.data?.items ?? []).filter((n) => n.channel === "inApp" && !n.readAt).length;

  // Move focus to the new page's heading, so keyboard and screen reader users land on it
  // (unless the page put it on its first field itself, as sign-in does).
  useEffect(() => {
    const heading = document.querySelector<HTMLElement>("main h1");
    const active = document.activeElement;
    const pageChoseFocus = active !== null && active !== document.body && Boolean(active.closest("main"));
    if (!pageChoseFocus) heading?.focus({ preventScroll: false });
    document.title = heading?.textContent ? `${heading.textContent} · shop` : "shop";
  }, [path, current?.role]);

  let page: ComponentChildren;
  if (path === "/login") {
    if (current) return <Redirect to={homeFor(current.role)} />;
    page = <Login next={query.get("next")} />;
  } else if (!current) {
    return <Redirect to={`/login${path === "/" ? "" : `?next=${encodeURIComponent(path + location.search)}`}`} />;
  } else {
    const found = ROUTES.map((r) => ({ r, params: match(r.pattern, path) })).find((x) => x.params !== null);
    if (!found) page = <NotFound />;
    else if (!found.r.roles.includes(current.role)) page = <Forbidden role={current.role} needs={found.r.roles} />;
    else page = found.r.view(found.params ?? {}, { refreshInbox: inbox.reload });
  }

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <a class="brand" href={current ? homeFor(current.role) : "/login"}>
          shop
        </a>
        {current && <Nav role={current.role} unread={unread} />}
        {current && (
          <div class="who">
            <span class="badge info" data-testid="role">
              {current.role}
            </span>
            <button
              type="button"
              class="secondary small"
              onClick={() => {
                cart.clear();
                signOut();
                navigate("/login");
              }}
            >
              Sign out
            </button>
          </div>
        )}
      </header>
      <main id="main">{page}</main>
    </>
  );
}

const root = document.getElementById("app")!;
interceptLinks(root);
render(<App />, root);
