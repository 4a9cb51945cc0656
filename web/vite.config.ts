import { defineConfig } from "vite";

// `npm run dev` proxies the API to a gateway started by `make run` (SHOP_API, default :8000);
// `npm run build` writes web/dist, which the gateway serves at `/`.
const api = process.env.SHOP_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: { proxy: { "/api": api } },
});
