// The console's entry: kept small so the reads the first page waits for start before the rest of the
// console (React, the pages, the map data) has loaded and run; boot.tsx renders the app.
import { startEarlyReads } from './lib/early-reads';

startEarlyReads();
void import('./boot');
