// Builds the page into the Python package (awe/http/static), served by awe/http/page.py:
// index.html at "/", everything else under "/ui/". No inline script, no CDN, no eval.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "../awe/http/static",
    emptyOutDir: true,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1000,
  },
  server: {
    // `npm run dev` against an engine on the default port: the API and the WebSocket are proxied.
    proxy: {
      "^/(graphs|graph|runs|tools|workers|healthz)": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
});
