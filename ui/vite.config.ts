import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Everything is bundled: the app loads nothing from a network.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  build: { outDir: "dist", target: "es2021", sourcemap: false },
  test: { environment: "node" },
});
