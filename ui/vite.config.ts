import { defineConfig } from "vite";

// Relative asset URLs (base './'): the gateway serves the UI under /ui, possibly behind a proxy's
// path prefix, and sets a <base> per page so deep links find the assets too.
export default defineConfig({
  base: "./",
  build: {
    outDir: "../src/waypost/ui/dist",
    emptyOutDir: true,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
