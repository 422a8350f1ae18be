import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { ApiError } from './lib/api';
import { AuthProvider } from './lib/auth';
import { keepNewest } from './lib/freshness';
import './styles.css';

const client = new QueryClient({
  defaultOptions: {
    queries: {
      // Live updates come through the watch; refetching on every focus would only add load.
      refetchOnWindowFocus: false,
      staleTime: 30_000,
      // Client errors (bad selector, forbidden, not found) will not get better by retrying.
      retry: (n, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && n < 2,
    },
  },
});
// Objects (GET responses, watch changes, mutation results) never go back to an older resourceVersion.
client.setQueryDefaults(['get'], { structuralSharing: keepNewest });

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={client}>
      <AuthProvider>
        <App />
      </AuthProvider>
    </QueryClientProvider>
  </StrictMode>,
);
