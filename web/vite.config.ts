// Builds the page into the Python package (awe/http/static), served by awe/http/page.py:
// index.html at "/", the assets under "/ui/assets/". No inline script, no CDN, no eval.
import react from "@vitejs/plugin-react";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const ROOT = fileURLToPath(new URL(".", import.meta.url));
/** What the build is made from; tests/test_web_page.py hashes the same files the same way. */
const SOURCES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "public", "src"];

function sourceHash(): string {
  const files: string[] = [];
  const walk = (path: string): void => {
    if (statSync(join(ROOT, path)).isDirectory()) {
      for (const name of readdirSync(join(ROOT, path))) walk(`${path}/${name}`);
    } else {
      files.push(path);
    }
  };
  SOURCES.forEach(walk);
  const hash = createHash("sha256");
  for (const path of files.sort()) {
    hash.update(`${path}\0`);
    hash.update(readFileSync(join(ROOT, path)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** Writes source-hash.txt beside the build, so a test can tell a build older than its sources. */
function stampSources(): Plugin {
  return {
    name: "awe-stamp-sources",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "source-hash.txt", source: `${sourceHash()}\n` });
    },
  };
}

export default defineConfig({
  base: "/ui/",
  plugins: [react(), stampSources()],
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
