import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The console is served by `edgeplane server` at `/`; in `npm run dev -w @edgeplane/console` the API is proxied.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: {
    proxy: {
      '/api': { target: process.env.EDGEPLANE_SERVER ?? 'http://localhost:8080', ws: true },
    },
  },
});
